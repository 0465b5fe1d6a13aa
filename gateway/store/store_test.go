package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a writer process for the multi-process
// tests: OPENSOUL_STORE_HELPER selects what it does.
func TestMain(m *testing.M) {
	switch os.Getenv("OPENSOUL_STORE_HELPER") {
	case "add":
		s := New(os.Getenv("OPENSOUL_STORE_DIR"))
		id := os.Getenv("OPENSOUL_STORE_ID")
		err := s.UpdateProfiles("main", func(p *Profiles) error {
			p.Profiles[id] = Credential{Type: TypeAPIKey, Provider: "anthropic", Key: "sk-ant-api03-" + id}
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "loop":
		s := New(os.Getenv("OPENSOUL_STORE_DIR"))
		for i := 0; ; i++ {
			err := s.UpdateProfiles("main", func(p *Profiles) error {
				// Grow and shrink so the file size changes between writes.
				p.Profiles[fmt.Sprintf("anthropic:k%d", i%50)] = Credential{Type: TypeToken, Provider: "anthropic", Token: fmt.Sprintf("tok-%d-%0*d", i, i%300, 0)}
				return nil
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
	os.Exit(m.Run())
}

func helper(t *testing.T, dir, mode string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OPENSOUL_STORE_HELPER="+mode, "OPENSOUL_STORE_DIR="+dir)
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stderr = os.Stderr
	return cmd
}

func TestConcurrentProcessesLoseNoProfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 24
	cmds := make([]*exec.Cmd, n)
	for i := range cmds {
		cmds[i] = helper(t, dir, "add", "OPENSOUL_STORE_ID=anthropic:p"+strconv.Itoa(i))
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("writer failed: %v", err)
		}
	}
	p, err := New(dir).LoadProfiles("main")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Profiles) != n {
		t.Fatalf("got %d profiles after %d concurrent writers, want %d", len(p.Profiles), n, n)
	}
	for i := 0; i < n; i++ {
		if _, ok := p.Profiles["anthropic:p"+strconv.Itoa(i)]; !ok {
			t.Errorf("profile anthropic:p%d lost", i)
		}
	}
}

func TestSIGKILLedWriterLeavesValidFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := New(dir)
	rng := rand.New(rand.NewPCG(1, 2))
	runs := 25
	if testing.Short() {
		runs = 5
	}
	for run := 0; run < runs; run++ {
		cmd := helper(t, dir, "loop")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(5+rng.IntN(40)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		data, err := os.ReadFile(s.ProfilesPath("main"))
		if errors.Is(err, os.ErrNotExist) {
			continue // killed before its first rename
		}
		if err != nil {
			t.Fatal(err)
		}
		var p Profiles
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatalf("run %d: file torn after SIGKILL: %v", run, err)
		}
		// The lock must not be stale: a new writer gets it at once.
		if err := s.UpdateProfiles("main", func(*Profiles) error { return nil }); err != nil {
			t.Fatalf("run %d: write after kill: %v", run, err)
		}
	}
	if _, err := s.LoadProfiles("main"); err != nil {
		t.Fatal(err)
	}
}

func TestFilesArePrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	s := New(dir)
	if err := s.UpdateProfiles("main", func(p *Profiles) error {
		p.Profiles["openai:default"] = Credential{Type: TypeAPIKey, Provider: "openai", Key: "sk-test-0123456789abcdef"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.ProfilesPath("main"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("auth-profiles.json mode %o, want 600", fi.Mode().Perm())
	}
	for _, d := range []string{filepath.Dir(s.ProfilesPath("main")), s.AgentDir("main")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s mode %o, want 700", d, fi.Mode().Perm())
		}
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(s.ProfilesPath("main")), ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("temp files left behind: %v", left)
	}
}

func TestCorruptFileIsNeverOverwritten(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"syntax": `{"version":1,"profiles":{"a":`,
		"type":   `{"version":1,"profiles":[1,2]}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := New(t.TempDir())
			path := s.ProfilesPath("main")
			os.MkdirAll(filepath.Dir(path), 0o700)
			os.WriteFile(path, []byte(content), 0o600)
			err := s.UpdateProfiles("main", func(p *Profiles) error {
				p.Profiles["x:y"] = Credential{Type: TypeAPIKey, Provider: "x"}
				return nil
			})
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want *CorruptError", err)
			}
			if ce.Path != path {
				t.Errorf("error names %q, want %q", ce.Path, path)
			}
			got, _ := os.ReadFile(path)
			if string(got) != content {
				t.Errorf("corrupt file was rewritten: %q", got)
			}
			if _, err := s.LoadEffective("main"); !errors.As(err, &ce) {
				t.Errorf("LoadEffective: got %v, want *CorruptError", err)
			}
		})
	}
}

func TestEffectiveInheritsMain(t *testing.T) {
	t.Parallel()
	s := New(t.TempDir())
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.UpdateProfiles("main", func(p *Profiles) error {
		p.Profiles["anthropic:default"] = Credential{Type: TypeAPIKey, Provider: "anthropic", Key: "main-key"}
		p.Profiles["openai:default"] = Credential{Type: TypeAPIKey, Provider: "openai", Key: "main-openai"}
		p.Order["anthropic"] = []string{"anthropic:default"}
		p.Order["openai"] = []string{"openai:default"}
		return nil
	}))
	must(s.UpdateProfiles("cron", func(p *Profiles) error {
		p.Profiles["anthropic:default"] = Credential{Type: TypeAPIKey, Provider: "anthropic", Key: "cron-key"}
		p.Order["anthropic"] = []string{"anthropic:default", "anthropic:extra"}
		return nil
	}))
	e, err := s.LoadEffective("cron")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Profiles["anthropic:default"].Key; got != "cron-key" {
		t.Errorf("own profile should override main's: got %q", got)
	}
	if e.Owner["anthropic:default"] != "cron" || e.Owner["openai:default"] != "main" {
		t.Errorf("owners: %v", e.Owner)
	}
	if got := e.Order["anthropic"]; len(got) != 2 {
		t.Errorf("own order should override per provider: %v", got)
	}
	if got := e.Order["openai"]; len(got) != 1 || got[0] != "openai:default" {
		t.Errorf("main's order for other providers should be inherited: %v", got)
	}
	m, err := s.LoadEffective("main")
	if err != nil {
		t.Fatal(err)
	}
	if m.Profiles["anthropic:default"].Key != "main-key" {
		t.Error("main must not see another agent's profiles")
	}
}

func TestValidAgentID(t *testing.T) {
	t.Parallel()
	for id, ok := range map[string]bool{"main": true, "cron-2": true, "a.b_c": true, "": false, "..": false, "../x": false, "a/b": false, ".hidden": false} {
		if err := ValidAgentID(id); (err == nil) != ok {
			t.Errorf("ValidAgentID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

func TestNoChangeSkipsWrite(t *testing.T) {
	t.Parallel()
	s := New(t.TempDir())
	if err := s.UpdateState("main", func(*State) error { return NoChange }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.StatePath("main")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NoChange should not create the file: %v", err)
	}
}

// TestSessionLimits: sessions.json stays bounded whoever writes it: long
// ids and model overrides are refused (and old ones dropped), idle
// sessions expire and the least recently used go beyond the cap.
func TestSessionLimits(t *testing.T) {
	st := New(t.TempDir())
	st.Sessions = SessionLimits{MaxPerAgent: 3, Idle: time.Hour, MaxIDBytes: 16, MaxModelBytes: 32}
	now := time.Now().UnixMilli()
	put := func(id, model string, at int64) error {
		return st.UpdateSessions("main", func(ss *Sessions) error {
			ss.Sessions[id] = &Session{ModelOverride: model, CreatedAt: at, UpdatedAt: at}
			return nil
		})
	}
	if err := put(strings.Repeat("s", 17), "", now); err == nil || !strings.Contains(err.Error(), "maxIdBytes") {
		t.Errorf("a 17-byte session id: %v", err)
	}
	if err := put("s", "anthropic/"+strings.Repeat("m", 8<<20), now); err == nil || !strings.Contains(err.Error(), "maxModelBytes") {
		t.Errorf("an 8 MiB model override: %v", err)
	}
	for i, id := range []string{"old", "a", "b", "c", "d"} {
		at := now + int64(i)
		if id == "old" {
			at = now - 2*time.Hour.Milliseconds()
		}
		if err := put(id, "anthropic/m", at); err != nil {
			t.Fatal(err)
		}
	}
	ss, err := st.LoadSessions("main")
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(ss.Sessions)); !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Errorf("kept %v, want the 3 most recent [b c d]", got)
	}
	// A file written before the limits loses its oversized sessions at
	// the next write instead of refusing every write.
	raw := `{"version":1,"sessions":{"` + strings.Repeat("x", 100) + `":{"updatedAt":` + fmt.Sprint(now) + `}}}`
	if err := os.WriteFile(st.SessionsPath("main"), []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := put("e", "", now); err != nil {
		t.Fatalf("a write after an old oversized session: %v", err)
	}
	if ss, _ := st.LoadSessions("main"); len(ss.Sessions) != 1 {
		t.Errorf("sessions after the write: %d, want 1", len(ss.Sessions))
	}
}
