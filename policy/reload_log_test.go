package policy

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"
)

// TestReloadReturnsOutcomes: Reload's outcomes (a new set, a refused one,
// an unreadable directory) come back as values and are never logged by the
// engine, so the gateway, which owns the reload loop and logs them, prints
// one line per policy edit rather than two.
func TestReloadReturnsOutcomes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.rego")
	writeFile(t, file, "package opensoul.rules\nprefer contains \"anthropic:key\"\n")
	var logs bytes.Buffer
	e := newEngine(t, Options{Dirs: []string{dir}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	writeFile(t, file, "package opensoul.rules\nprefer contains \"anthropic:work\"\n")
	if changed, err := e.Reload(ctx); !changed || err != nil {
		t.Fatalf("Reload after an edit = %v, %v", changed, err)
	}
	writeFile(t, file, "package opensoul.rules\nprefer contains x if {\n")
	if changed, err := e.Reload(ctx); changed || err == nil {
		t.Fatalf("Reload of a broken file = %v, %v", changed, err)
	}
	e.SetDirs([]string{filepath.Join(file, "not-a-dir")})
	if _, err := e.Reload(ctx); err == nil {
		t.Fatal("Reload of an unreadable policy directory succeeded")
	}
	if logs.Len() != 0 {
		t.Errorf("the engine logged reload outcomes it also returned:\n%s", logs.String())
	}
}
