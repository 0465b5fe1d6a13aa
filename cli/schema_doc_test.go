package cli

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestEveryKeyIsDocumented: each key of the typed config appears in the
// repo's opensoul.yaml, the reference users read.
func TestEveryKeyIsDocumented(t *testing.T) {
	raw, err := os.ReadFile("../opensoul.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range documentedKeys(reflect.TypeOf(Config{}), "") {
		var node any = doc
		for part := range strings.SplitSeq(key, ".") {
			if part == "<id>" {
				part = "cron" // the example agent
			}
			m, ok := node.(map[string]any)
			if !ok {
				node = nil
				break
			}
			node, ok = m[part]
			if !ok && !strings.Contains(string(raw), "# "+part+":") { // documented commented out
				t.Errorf("opensoul.yaml does not document %s", key)
				break
			}
		}
	}
}

// documentedKeys lists the dotted koanf keys of struct type t; a map is one
// key (its entries are the user's).
func documentedKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("koanf")
		if name == "" {
			continue
		}
		if strings.HasPrefix(name, ",remain") {
			// The other keys (agents.<id>): documented by an example <id>.
			name = "<id>"
			if f.Type.Kind() == reflect.Map && f.Type.Elem().Kind() == reflect.Struct {
				keys = append(keys, documentedKeys(f.Type.Elem(), prefix+name+".")...)
				continue
			}
		}
		key := prefix + name
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, documentedKeys(f.Type, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}
