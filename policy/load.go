package policy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/opensoul/opensoul/policies"
)

// builtinPrefix names embedded policy files in errors and listings.
const builtinPrefix = "builtin/"

// source is one policy file's text.
type source struct {
	name    string // builtin/select.rego or the file's path
	text    []byte
	builtin bool
}

func (s source) isTest() bool { return strings.HasSuffix(s.name, "_test.rego") }

// builtinSources returns the embedded policies, tests included.
func builtinSources() ([]source, error) {
	var out []source
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") {
			return err
		}
		b, err := policies.FS.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, source{name: builtinPrefix + p, text: b, builtin: true})
		return nil
	})
	return out, err
}

// dirSources reads every *.rego file under dirs (recursively, skipping
// hidden files and directories), in a stable order. A directory that does
// not exist holds no policies.
func dirSources(dirs []string) ([]source, error) {
	var out []source
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == dir && errors.Is(err, fs.ErrNotExist) {
					return fs.SkipAll
				}
				return err
			}
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() || !strings.HasSuffix(p, ".rego") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, source{name: p, text: b})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read policy dir %s: %w", dir, err)
		}
	}
	return out, nil
}

// fingerprint identifies the content of a set of sources.
func fingerprint(srcs []source) [sha256.Size]byte {
	h := sha256.New()
	for _, s := range srcs {
		fmt.Fprintf(h, "%s\x00%d\x00", s.name, len(s.text))
		h.Write(s.text)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// removedBuiltins reports whether a built-in function is withheld from
// policies: anything that reaches the network or the runtime.
func removedBuiltin(name string) bool {
	return name == "http.send" || name == "opa.runtime" || strings.HasPrefix(name, "net.")
}

// capabilities are OPA's for this version minus the removed built-ins.
func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool { return removedBuiltin(b.Name) })
	return c
}

// compile parses and compiles srcs as Rego v1. Errors are [CompileErrors].
func compile(srcs []source, caps *ast.Capabilities, print bool) (*ast.Compiler, map[string]*ast.Module, error) {
	mods := make(map[string]*ast.Module, len(srcs))
	var errs ast.Errors
	for _, s := range srcs {
		m, err := ast.ParseModuleWithOpts(s.name, string(s.text), ast.ParserOptions{
			RegoVersion:       ast.RegoV1,
			Capabilities:      caps,
			ProcessAnnotation: false,
		})
		if err != nil {
			var aerrs ast.Errors
			if !errors.As(err, &aerrs) {
				return nil, nil, fmt.Errorf("parse %s: %w", s.name, err)
			}
			errs = append(errs, aerrs...)
			continue
		}
		mods[s.name] = m
	}
	if len(errs) > 0 {
		return nil, nil, newCompileErrors(errs)
	}
	c := ast.NewCompiler().
		WithCapabilities(caps).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(print)
	if c.Compile(mods); c.Failed() {
		return nil, nil, newCompileErrors(c.Errors)
	}
	return c, mods, nil
}

// CompileError is one problem in a policy file, located by file, line and
// column, with OPA's message.
type CompileError struct {
	File    string
	Line    int
	Col     int
	Code    string // OPA's error code, e.g. rego_parse_error
	Message string
	Err     *ast.Error
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Col, e.Code, e.Message)
}

func (e *CompileError) Unwrap() error { return e.Err }

// CompileErrors are all the problems found compiling a policy set.
type CompileErrors []*CompileError

func (e CompileErrors) Error() string {
	lines := make([]string, len(e))
	for i, ce := range e {
		lines[i] = ce.Error()
	}
	return "policy compile failed:\n" + strings.Join(lines, "\n")
}

func newCompileErrors(errs ast.Errors) CompileErrors {
	out := make(CompileErrors, 0, len(errs))
	for _, e := range errs {
		ce := &CompileError{File: "(unknown)", Code: e.Code, Message: e.Message, Err: e}
		if e.Location != nil {
			ce.File, ce.Line, ce.Col = e.Location.File, e.Location.Row, e.Location.Col
		}
		if name, ok := strings.CutPrefix(e.Message, "undefined function "); ok && removedBuiltin(name) {
			ce.Message += " (removed: policies run without network or runtime access)"
		}
		out = append(out, ce)
	}
	return out
}
