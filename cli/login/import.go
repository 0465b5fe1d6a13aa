package login

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/opensoul/opensoul/gateway/keep"
	"github.com/opensoul/opensoul/gateway/store"
)

// ImportRequest is one `models auth import`: which CLI's login, read
// from where, stored as which profile.
type ImportRequest struct {
	Source    string // keep.SourceCodex or keep.SourceClaude
	Path      string // "": the CLI's own file (externalPath)
	ID        string // "": <provider>:<source>
	WriteBack bool   // OpenSoul may refresh it and write the tokens back
}

// UsageError is a request that the command line got wrong (exit 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Import stores the CLI's login as an externally managed profile of
// agent: OpenSoul follows the CLI's file instead of spending its refresh
// token (unless WriteBack).
func (h *Host) Import(agent string, r ImportRequest) error {
	source := r.Source
	file := r.Path
	if file == "" {
		file = h.externalPath(source)
	}
	file, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	c, err := keep.ReadExternal(source, file)
	if err != nil {
		return fmt.Errorf("import %s: %w", source, err)
	}
	provider := keep.ExternalProvider(source)
	pid := r.ID
	if pid == "" {
		pid = provider + ":" + source
	}
	if len(pid) <= len(provider)+1 || pid[:len(provider)+1] != provider+":" {
		return &UsageError{fmt.Sprintf("--profile-id %q must look like %s:<name>", pid, provider)}
	}
	c.External = &store.External{Source: source, Path: file, WriteBack: r.WriteBack}
	if err := h.Store.UpdateProfiles(agent, func(p *store.Profiles) error {
		p.Profiles[pid] = c
		return nil
	}); err != nil {
		return err
	}
	h.ResetUsage(agent, pid)
	if err := h.Record(pid, provider, store.TypeOAuth); err != nil {
		h.Warnf("imported the login, but could not record it in %s: %v", h.ConfigFile, err)
	}
	who := c.Email
	if who == "" {
		who = "the CLI's account"
	}
	mode := "the CLI refreshes it; OpenSoul follows the file"
	if r.WriteBack {
		mode = "OpenSoul may refresh it and writes new tokens back to the file"
	}
	expiry := ""
	if c.Expires != 0 {
		expiry = ", access token expires " + time.UnixMilli(c.Expires).Local().Format(time.RFC3339)
	}
	fmt.Fprintf(h.Stdout, "Imported %s (%s, %s%s) from %s as %s: %s.\n", source, provider, who, expiry, file, pid, mode)
	fmt.Fprintln(h.Stdout, "Check it with: opensoul models status")
	return nil
}

// externalPath is where a provider CLI keeps its login by default.
func (h *Host) externalPath(source string) string {
	home := h.Environ["HOME"]
	if source == keep.SourceClaude {
		if d := h.Environ["CLAUDE_CONFIG_DIR"]; d != "" {
			return filepath.Join(d, ".credentials.json")
		}
		return filepath.Join(home, ".claude", ".credentials.json")
	}
	if d := h.Environ["CODEX_HOME"]; d != "" {
		return filepath.Join(d, "auth.json")
	}
	return filepath.Join(home, ".codex", "auth.json")
}
