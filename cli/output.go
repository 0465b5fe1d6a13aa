package cli

import (
	"encoding/json"
	"flag"
	"io"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// ffcliFlags wraps a flag set built by app.flagSet.
type ffcliFlags struct{ *flag.FlagSet }
