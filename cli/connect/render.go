package connect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/template"

	"github.com/BurntSushi/toml"
)

// view is what a recipe's templates see: the setup, the route a part
// uses and the wire API it speaks there.
type view struct {
	Setup
	Route
	Wire string
}

func (rec recipe) build(s Setup) (Recipe, error) {
	out := Recipe{Client: rec.name, Title: rec.title, Checked: rec.checked, Parts: []Part{}, Notes: rec.notes, Missing: []Missing{}}
	used := map[string]bool{} // routes already given to a part
	if rec.oneOf {
		var all []string
		for _, p := range rec.parts {
			all = append(all, p.apis...)
		}
		route, api, ok := s.Pick(all)
		for _, p := range rec.parts {
			if ok && slices.Contains(p.apis, api) {
				part, err := p.render(rec.name, view{s, route, api})
				if err != nil {
					return Recipe{}, err
				}
				out.Parts = append(out.Parts, part)
				break
			}
		}
		if !ok {
			out.Missing = append(out.Missing, Missing{Title: rec.parts[0].title, APIs: all})
		}
		return out, nil
	}
	for _, p := range rec.parts {
		free := s
		free.Routes = slices.DeleteFunc(slices.Clone(s.Routes), func(r Route) bool { return used[r.Provider] })
		route, api, ok := free.Pick(p.apis)
		if !ok {
			out.Missing = append(out.Missing, Missing{Title: p.title, APIs: p.apis})
			continue
		}
		used[route.Provider] = true
		part, err := p.render(rec.name, view{s, route, api})
		if err != nil {
			return Recipe{}, err
		}
		out.Parts = append(out.Parts, part)
	}
	return out, nil
}

func (p partSpec) render(client string, v view) (Part, error) {
	exec := func(field, text string) (string, error) {
		t, err := template.New(client + " " + field).Option("missingkey=error").Parse(text)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		if err := t.Execute(&b, v); err != nil {
			return "", err
		}
		return b.String(), nil
	}
	out := Part{Title: p.title, Provider: v.Provider, API: v.Wire, Env: []string{}}
	env, err := exec("env", p.env)
	if err != nil {
		return Part{}, err
	}
	for _, l := range strings.Split(env, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out.Env = append(out.Env, l)
		}
	}
	if out.Run, err = exec("run", p.run); err != nil {
		return Part{}, err
	}
	if p.code != nil {
		text, err := exec("code", p.code.text)
		if err != nil {
			return Part{}, err
		}
		out.Code = &Code{Lang: p.code.lang, Text: text}
	}
	if p.file != nil {
		text, err := exec("file", p.file.text)
		if err != nil {
			return Part{}, err
		}
		if out.File, err = p.file.finish(text); err != nil {
			return Part{}, fmt.Errorf("%s: %w", client, err)
		}
	}
	return out, nil
}

// finish checks a rendered block parses in its format and, for JSON,
// nests it at jsonPath for printing.
func (f *fileSpec) finish(text string) (*File, error) {
	out := &File{Path: f.path, Format: f.format, Writable: true, spec: f, block: text}
	switch f.format {
	case "toml":
		var v map[string]any
		if _, err := toml.Decode(text, &v); err != nil {
			return nil, fmt.Errorf("the %s block does not parse: %w", f.path, err)
		}
		out.Text = text
	case "json":
		if !json.Valid([]byte(text)) {
			return nil, fmt.Errorf("the %s entry is not valid JSON", f.path)
		}
		keys := strings.Split(f.jsonPath, ".")
		nested := text
		for i := len(keys) - 1; i >= 0; i-- {
			k, _ := json.Marshal(keys[i])
			nested = "{" + string(k) + ":" + nested + "}"
		}
		var b bytes.Buffer
		if err := json.Indent(&b, compact(nested), "", "  "); err != nil {
			return nil, err
		}
		out.Text = b.String() + "\n"
	default:
		return nil, fmt.Errorf("unknown file format %q", f.format)
	}
	return out, nil
}

func compact(s string) []byte {
	var b bytes.Buffer
	json.Compact(&b, []byte(s)) // s is valid JSON (checked by the caller)
	return b.Bytes()
}

// Text writes r the way `opensoul connect <client>` prints it.
func (r Recipe) Text(w io.Writer, s Setup) {
	agent := ""
	if s.Agent != "" {
		agent = fmt.Sprintf(", agent %s", s.Agent)
	}
	fmt.Fprintf(w, "%s through the OpenSoul gateway at %s%s\n", r.Title, s.Gateway, agent)
	if r.Checked != "" {
		fmt.Fprintf(w, "(recipe run with %s)\n", r.Checked)
	}
	if len(r.Parts) > 0 {
		fmt.Fprintf(w, "\nThe gateway token, in %s:\n  %s\n", s.TokenVar, s.TokenFrom)
	}
	for _, p := range r.Parts {
		fmt.Fprintf(w, "\n%s, through /%s (%s):\n", p.Title, p.Provider, p.API)
		if len(p.Env) > 0 {
			fmt.Fprintln(w)
			for _, l := range p.Env {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
		if p.File != nil {
			fmt.Fprintf(w, "\nAdd to %s (or run with --write):\n\n", p.File.Path)
			indent(w, p.File.Text)
		}
		if p.Code != nil {
			fmt.Fprintln(w)
			indent(w, p.Code.Text)
		}
		if p.Run != "" {
			fmt.Fprintf(w, "\nTry it:\n\n")
			indent(w, p.Run)
		}
	}
	for _, m := range r.Missing {
		fmt.Fprintf(w, "\n%s: no provider in use speaks %s; give one a credential (opensoul models auth paste-token --provider …) or add one to the config (providers.<name>).\n", m.Title, strings.Join(m.APIs, " or "))
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
}

func indent(w io.Writer, text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if l == "" {
			fmt.Fprintln(w)
			continue
		}
		fmt.Fprintf(w, "  %s\n", l)
	}
}
