package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// runInfo is what a running gateway says about itself in
// <state>/gateway-run.json, so that `gateway status` can tell what the
// process runs (binary, listen address, config) from what is installed or
// configured now. It never holds a secret.
type runInfo struct {
	PID     int       `json:"pid"`
	Binary  string    `json:"binary"`
	Listen  string    `json:"listen"` // as asked for (flag or gateway.listen)
	Addr    string    `json:"addr"`   // as bound
	Config  string    `json:"config"`
	Started time.Time `json:"started"`
	// Restart lists config changes the running gateway cannot apply.
	Restart []string `json:"restart,omitempty"`
}

func runInfoPath(stateDir string) string { return filepath.Join(stateDir, "gateway-run.json") }

func writeRunInfo(stateDir string, r runInfo) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return store.WriteFileAtomic(runInfoPath(stateDir), append(data, '\n'))
}

// readRunInfo reads the file; ok is false when there is none.
func readRunInfo(stateDir string) (r runInfo, ok bool, err error) {
	data, err := os.ReadFile(runInfoPath(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, false, fmt.Errorf("%s: %w", runInfoPath(stateDir), err)
	}
	return r, true, nil
}

// removeRunInfo removes the file if it is still this process's.
func removeRunInfo(stateDir string, pid int) {
	if r, ok, _ := readRunInfo(stateDir); ok && r.PID == pid {
		os.Remove(runInfoPath(stateDir))
	}
}

// noteRestart compares the config in force with the one the gateway
// started with, logs each setting that only a restart applies, and
// records them in the run file for `gateway status`.
func (w *gatewayWatcher) noteRestart() {
	var reasons []string
	if w.a.cfg.Gateway.Listen != w.run.Listen {
		reasons = append(reasons, fmt.Sprintf("gateway.listen is %s, the gateway listens on %s", w.a.cfg.Gateway.Listen, w.run.Listen))
	}
	if sessionLimits(w.a.cfg) != w.a.st.Sessions {
		reasons = append(reasons, "gateway.sessions changed; the gateway keeps the limits it started with")
	}
	if w.a.cfg.Log.Format != w.startFormat {
		reasons = append(reasons, fmt.Sprintf("log.format is %s, the gateway logs %s", w.a.cfg.Log.Format, w.startFormat))
	}
	if slices.Equal(reasons, w.run.Restart) {
		return
	}
	for _, r := range reasons {
		if !slices.Contains(w.run.Restart, r) {
			w.log.Warn("config change needs a restart: run `opensoul gateway restart` (or restart the gateway however you run it)", "change", r)
		}
	}
	w.run.Restart = reasons
	if err := writeRunInfo(w.a.st.Dir, w.run); err != nil {
		w.log.Warn("cannot update the run file", "file", runInfoPath(w.a.st.Dir), "err", err)
	}
}
