package wasm

import (
	"embed"
	"slices"
	"strings"
)

// The built-in modules are built from wasm/modules/<name>/ by
// build-modules.sh; check-generated.sh proves the committed files match.
//
//go:generate sh build-modules.sh
//go:embed modules/*.wasm
var builtinFS embed.FS

// BuiltinNames lists the providers that have a built-in module.
func BuiltinNames() []string {
	ents, _ := builtinFS.ReadDir("modules")
	var names []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".wasm"); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func builtinModule(name string) []byte {
	b, _ := builtinFS.ReadFile("modules/" + name + ".wasm")
	return b
}

func isBuiltin(name string) bool {
	_, err := builtinFS.Open("modules/" + name + ".wasm")
	return err == nil
}
