package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// ConfigError names the file, line and key of a config problem.
type ConfigError struct {
	File string
	Line int
	Col  int
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Col, e.Key, e.Msg)
}

// checkYAML parses raw and checks every key and value kind against the
// Config schema, so mistakes are reported with file:line before merging.
func checkYAML(file string, raw []byte) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	var errs []error
	walkYAML(file, root, reflect.TypeOf(Config{}), "", &errs)
	return errors.Join(errs...)
}

func walkYAML(file string, n *yaml.Node, t reflect.Type, key string, errs *[]error) {
	bad := func(n *yaml.Node, msg string) {
		k := key
		if k == "" {
			k = "(top level)"
		}
		*errs = append(*errs, &ConfigError{File: file, Line: n.Line, Col: n.Column, Key: k, Msg: msg})
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	join := func(k string) string {
		if key == "" {
			return k
		}
		return key + "." + k
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		if n.Kind != yaml.MappingNode {
			bad(n, fmt.Sprintf("expected a mapping of keys, got %s", describeNode(n)))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if t.Kind() == reflect.Map {
				walkYAML(file, vn, t.Elem(), join(kn.Value), errs)
				continue
			}
			f, ok := fieldByKey(t, kn.Value, false)
			if !ok {
				if f, ok := remainField(t); ok { // a map of the other keys (agents.<id>)
					walkYAML(file, vn, f.Type.Elem(), join(kn.Value), errs)
					continue
				}
			}
			if !ok {
				msg := "unknown key"
				if s := suggest(kn.Value, schemaKeys(t)); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", join(s))
				}
				saved := key
				key = join(kn.Value)
				bad(kn, msg)
				key = saved
				continue
			}
			walkYAML(file, vn, f.Type, join(kn.Value), errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			bad(n, fmt.Sprintf("expected a list, got %s", describeNode(n)))
			return
		}
		for i, c := range n.Content {
			walkYAML(file, c, t.Elem(), fmt.Sprintf("%s[%d]", key, i), errs)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			bad(n, fmt.Sprintf("expected %s, got %s", kindName(t), describeNode(n)))
			return
		}
		if n.Tag == "!!str" && strings.Contains(n.Value, "${") {
			return // checked after expansion
		}
		ok := true
		switch t.Kind() {
		case reflect.Int, reflect.Int64:
			ok = n.Tag == "!!int"
		case reflect.Float64:
			ok = n.Tag == "!!int" || n.Tag == "!!float"
		case reflect.Bool:
			ok = n.Tag == "!!bool"
		}
		if !ok {
			bad(n, fmt.Sprintf("expected %s, got %q", kindName(t), n.Value))
		}
	}
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return t.Kind().String()
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}
