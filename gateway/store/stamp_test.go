package store

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestStampSeesReplacement: a file replaced by rename with the same size
// and modification time has a new Stamp (its inode), a missing file has
// the zero Stamp, and an untouched file keeps its Stamp.
func TestStampSeesReplacement(t *testing.T) {
	dir := t.TempDir()
	p, tmp := filepath.Join(dir, "f"), filepath.Join(dir, "f.tmp")
	if StampOf(p) != (Stamp{}) {
		t.Fatal("a missing file has a non-zero Stamp")
	}
	mtime := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	write := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write(p, "one")
	before := StampsOf(p, tmp)
	if !slices.Equal(before, StampsOf(p, tmp)) {
		t.Fatal("an untouched file changed its Stamp")
	}
	write(tmp, "two")
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	if after := StampsOf(p, tmp); after[0] == before[0] {
		t.Fatal("a file replaced by rename (same size and mtime) kept its Stamp")
	}
}
