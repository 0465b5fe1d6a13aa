package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// repair is one change `doctor --fix` proposes: shown as a diff first,
// applied only with --yes. It never deletes a credential.
type repair struct {
	What  string // one line for people
	Path  string
	Mode  os.FileMode // for a mode repair: the new mode
	Diff  string      // for a content repair: the change, old → new
	apply func() error
}

// repairs lists what doctor --fix would change for an agent: file and dir
// modes, expired sessions, user pins to profiles that no longer exist,
// profiles missing from the agent store's explicit order, cooldowns
// recorded for a replaced secret, and logins to refresh. Repairs of one
// file come in the order they apply, each diff starting where the
// previous one ended.
func (s *Setup) repairs(agent string) ([]repair, error) {
	var out []repair
	out = append(out, s.modeRepairs(agent)...)
	expired, err := s.expiredSessionsRepair(agent, time.Now()) // doctor_fix_state.go
	if err != nil {
		return nil, err
	}
	out = append(out, expired...)
	pins, err := s.pinRepair(agent)
	if err != nil {
		return nil, err
	}
	out = append(out, pins...)
	order, err := s.orderRepair(agent)
	if err != nil {
		return nil, err
	}
	out = append(out, order...)
	stale, err := s.staleCooldownRepairs(agent) // doctor_fix_state.go
	if err != nil {
		return nil, err
	}
	out = append(out, stale...)
	logins, err := s.loginRepairs(agent) // doctor_login.go
	if err != nil {
		return nil, err
	}
	return append(out, logins...), nil
}

func (s *Setup) modeRepairs(agent string) []repair {
	var out []repair
	want := func(path string, mode os.FileMode) {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm()&0o077 == 0 {
			return
		}
		out = append(out, repair{What: fmt.Sprintf("chmod %o %s (was %o: others could read it)", mode, path, fi.Mode().Perm()), Path: path, Mode: mode,
			apply: func() error { return os.Chmod(path, mode) }})
	}
	want(s.Store.Dir, 0o700)
	want(filepath.Join(s.Store.Dir, ".env"), 0o600)
	for _, ag := range slices.Compact([]string{store.DefaultAgent, agent}) {
		want(filepath.Dir(s.Store.ProfilesPath(ag)), 0o700)
		for _, p := range []string{s.Store.ProfilesPath(ag), s.Store.StatePath(ag), s.Store.SessionsPath(ag)} {
			want(p, 0o600)
		}
	}
	return out
}

// pinRepair clears user pins (/model …@profile) to profiles the agent no
// longer has: such a pin is strict, so every request of the session fails.
func (s *Setup) pinRepair(agent string) ([]repair, error) {
	eff, err := s.Store.LoadEffective(agent)
	if err != nil {
		return nil, err
	}
	sessions, err := s.Store.LoadSessions(agent)
	if err != nil {
		return nil, err
	}
	s.Store.Sessions.Tidy(sessions, time.Now()) // what expiredSessionsRepair drops first
	fix := func(ss *store.Sessions) bool {
		changed := false
		for _, s := range ss.Sessions {
			if s.AuthProfileOverrideSource == store.PinUser && s.AuthProfileOverride != "" {
				if _, ok := eff.Profiles[s.AuthProfileOverride]; !ok {
					s.AuthProfileOverride, s.AuthProfileOverrideSource = "", ""
					changed = true
				}
			}
		}
		return changed
	}
	before, _ := json.MarshalIndent(sessions, "", "  ")
	if !fix(sessions) {
		return nil, nil
	}
	after, _ := json.MarshalIndent(sessions, "", "  ")
	path := s.Store.SessionsPath(agent)
	return []repair{{What: "clear user pins to profiles that no longer exist (like /model default)", Path: path, Diff: lineDiff(string(before), string(after)),
		apply: func() error {
			return s.Store.UpdateSessions(agent, func(ss *store.Sessions) error {
				if !fix(ss) {
					return store.NoChange
				}
				return nil
			})
		}}}, nil
}

// orderRepair appends to the agent store's explicit order the profiles of
// its provider it leaves out (a pasted profile never serves otherwise).
func (s *Setup) orderRepair(agent string) ([]repair, error) {
	p, err := s.Store.LoadProfiles(agent)
	if err != nil {
		return nil, err
	}
	fix := func(p *store.Profiles) bool {
		changed := false
		for _, id := range slices.Sorted(maps.Keys(p.Profiles)) {
			prov := p.Profiles[id].Provider
			if o, ok := p.Order[prov]; ok && len(o) > 0 && !slices.Contains(o, id) {
				p.Order[prov] = append(o, id)
				changed = true
			}
		}
		return changed
	}
	before, _ := json.MarshalIndent(p.Order, "", "  ")
	if !fix(p) {
		return nil, nil
	}
	after, _ := json.MarshalIndent(p.Order, "", "  ")
	return []repair{{What: "add profiles missing from the agent store's order (at its end)", Path: s.Store.ProfilesPath(agent),
		Diff: lineDiff(string(before), string(after)),
		apply: func() error {
			return s.Store.UpdateProfiles(agent, func(p *store.Profiles) error {
				if !fix(p) {
					return store.NoChange
				}
				return nil
			})
		}}}, nil
}

// Fix is `doctor --fix` for the agent: it shows every repair, then the
// service environment gaps; with yes it applies them.
func (s *Setup) Fix(ctx context.Context, agent string, yes bool) error {
	if err := s.runFix(s.Stdout, agent, yes); err != nil {
		return err
	}
	return s.fixServiceEnv(ctx, yes)
}

// runFix shows every repair; with yes it backs up each file whose content
// changes (<file>.bak-<time>, same mode) and applies the repairs.
func (s *Setup) runFix(w io.Writer, agent string, yes bool) error {
	reps, err := s.repairs(agent)
	if err != nil {
		return err
	}
	if len(reps) == 0 {
		fmt.Fprintln(w, "doctor --fix: nothing to repair")
		return nil
	}
	for _, r := range reps {
		fmt.Fprintf(w, "repair: %s\n", r.What)
		if r.Diff != "" {
			fmt.Fprintf(w, "--- %s\n+++ %s (after)\n%s", r.Path, r.Path, r.Diff)
		}
	}
	if !yes {
		fmt.Fprintf(w, "\nDry run: nothing changed. Apply these %d repair(s) with: opensoul doctor --fix --yes\n", len(reps))
		return nil
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	backedUp := map[string]bool{} // a file's backup is its content before the first repair
	for _, r := range reps {
		if r.Diff != "" && !backedUp[r.Path] {
			if err := backup(r.Path, stamp); err != nil {
				return fmt.Errorf("backup of %s: %w (nothing else changed)", r.Path, err)
			}
			backedUp[r.Path] = true
		}
		if err := r.apply(); err != nil {
			return fmt.Errorf("%s: %w", r.What, err)
		}
		fmt.Fprintf(w, "done: %s\n", r.What)
	}
	return nil
}

func backup(path, stamp string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	dst := path + ".bak-" + stamp
	if err := os.WriteFile(dst, data, fi.Mode().Perm()&0o600); err != nil && !os.IsExist(err) {
		return err
	}
	return nil
}

// lineDiff is a small LCS line diff: "-" old lines, "+" new, " " kept.
func lineDiff(a, b string) string {
	x, y := strings.SplitAfter(a, "\n"), strings.SplitAfter(b, "\n")
	n, m := len(x), len(y)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	line := func(prefix, s string) {
		if s != "" {
			sb.WriteString(prefix + strings.TrimSuffix(s, "\n") + "\n")
		}
	}
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case x[i] == y[j]:
			line(" ", x[i])
			i, j = i+1, j+1
		case lcs[i+1][j] >= lcs[i][j+1]:
			line("-", x[i])
			i++
		default:
			line("+", y[j])
			j++
		}
	}
	for ; i < n; i++ {
		line("-", x[i])
	}
	for ; j < m; j++ {
		line("+", y[j])
	}
	return sb.String()
}
