package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/opensoul/opensoul/gateway/store"
)

// upsertProfileMeta records auth.profiles.<id> = {provider, mode} in the
// config file by editing its text: comments, order and every unrelated
// byte stay as they were. The file is rewritten atomically under its lock.
func upsertProfileMeta(path, id, provider, mode string) error {
	return store.WithLock(path, func() error {
		raw, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		out, err := upsertProfileText(path, raw, id, provider, mode)
		if err != nil || bytes.Equal(out, raw) {
			return err
		}
		return store.WriteFileAtomic(path, out)
	})
}

// removeProfileMeta deletes auth.profiles.<id> from the config text.
func removeProfileMeta(path, id string) error {
	return store.WithLock(path, func() error {
		raw, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		lines := splitLines(raw)
		root, err := parseRoot(path, raw)
		if err != nil || root == nil {
			return err
		}
		auth := mapChild(root, "auth")
		profiles := mapChild(auth, "profiles")
		if profiles == nil {
			return nil
		}
		for i := 0; i+1 < len(profiles.Content); i += 2 {
			if profiles.Content[i].Value == id {
				start := profiles.Content[i].Line - 1
				end := blockEnd(lines, start)
				lines = append(lines[:start], lines[end:]...)
				return store.WriteFileAtomic(path, []byte(strings.Join(lines, "")))
			}
		}
		return nil
	})
}

func parseRoot(path string, raw []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w (not changed)", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: top level is not a mapping (not changed)", path)
	}
	return root, nil
}

func upsertProfileText(path string, raw []byte, id, provider, mode string) ([]byte, error) {
	root, err := parseRoot(path, raw)
	if err != nil {
		return nil, err
	}
	lines := splitLines(raw)
	if len(lines) > 0 && !strings.HasSuffix(lines[len(lines)-1], "\n") {
		lines[len(lines)-1] += "\n"
	}
	entry := func(indent string) []string {
		return []string{
			fmt.Sprintf("%s%s:\n", indent, yamlKey(id)),
			fmt.Sprintf("%s  provider: %s\n", indent, provider),
			fmt.Sprintf("%s  mode: %s\n", indent, mode),
		}
	}
	auth := mapChild(root, "auth")
	if auth == nil {
		if root != nil && mapKey(root, "auth") != nil {
			return nil, fmt.Errorf("%s: auth is not a block mapping; add auth.profiles.%s by hand (not changed)", path, id)
		}
		lines = append(lines, "auth:\n", "  profiles:\n")
		lines = append(lines, entry("    ")...)
		return []byte(strings.Join(lines, "")), nil
	}
	if auth.Style&yaml.FlowStyle != 0 {
		return nil, fmt.Errorf("%s: auth is written in flow style; add auth.profiles.%s by hand (not changed)", path, id)
	}
	authKey := mapKey(root, "auth")
	childIndent := strings.Repeat(" ", auth.Content[0].Column-1)
	profiles := mapChild(auth, "profiles")
	if profiles == nil {
		if mapKey(auth, "profiles") != nil {
			pk := mapKey(auth, "profiles")
			// "profiles:" with an empty value: fill it in place.
			at := pk.Line
			ins := entry(childIndent + "  ")
			lines = append(lines[:at], append(ins, lines[at:]...)...)
			return []byte(strings.Join(lines, "")), nil
		}
		at := blockEnd(lines, authKey.Line-1)
		ins := append([]string{childIndent + "profiles:\n"}, entry(childIndent+"  ")...)
		lines = append(lines[:at], append(ins, lines[at:]...)...)
		return []byte(strings.Join(lines, "")), nil
	}
	if profiles.Style&yaml.FlowStyle != 0 {
		return nil, fmt.Errorf("%s: auth.profiles is written in flow style; add %s by hand (not changed)", path, id)
	}
	indent := strings.Repeat(" ", profiles.Content[0].Column-1)
	for i := 0; i+1 < len(profiles.Content); i += 2 {
		k, v := profiles.Content[i], profiles.Content[i+1]
		if k.Value != id {
			continue
		}
		if v.Kind == yaml.MappingNode && mapChildValue(v, "provider") == provider && mapChildValue(v, "mode") == mode {
			return raw, nil
		}
		start := k.Line - 1
		end := blockEnd(lines, start)
		lines = append(lines[:start], append(entry(indent), lines[end:]...)...)
		return []byte(strings.Join(lines, "")), nil
	}
	at := blockEnd(lines, mapKey(auth, "profiles").Line-1)
	lines = append(lines[:at], append(entry(indent), lines[at:]...)...)
	return []byte(strings.Join(lines, "")), nil
}

func yamlKey(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return s
	}
	return strings.TrimSpace(string(out))
}

func splitLines(raw []byte) []string {
	if len(raw) == 0 {
		return nil
	}
	lines := strings.SplitAfter(string(raw), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// blockEnd returns the index of the first line after the block whose key
// is on line start: the next non-blank, non-comment line indented no
// deeper than the key. Trailing blank and comment lines stay outside.
func blockEnd(lines []string, start int) int {
	indent := leadingSpaces(lines[start])
	end := start + 1
	last := start + 1
	for ; end < len(lines); end++ {
		t := strings.TrimSpace(lines[end])
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if leadingSpaces(lines[end]) <= indent {
			break
		}
		last = end + 1
	}
	return last
}

func leadingSpaces(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

func mapKey(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}

func mapChild(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
				return v
			}
			return nil
		}
	}
	return nil
}

func mapChildValue(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1].Value
		}
	}
	return ""
}
