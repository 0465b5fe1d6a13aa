package wasm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// verdictFileName is the file, in the cache dir, that keeps check verdicts
// between runs: a CLI command that checks credentials it has checked before
// (models status) then loads no module at all, which is most of its time.
const verdictFileName = "checks.json"

// maxVerdicts bounds the file; it is a cache, losing entries is harmless.
const maxVerdicts = 1024

// verdictFile maps a hash of (module bytes, op, provider, type, secret,
// expiresAt) to the module's verdict. The secret is never written, only a
// SHA-256 that includes it. Verdicts are pure functions of the request and
// the module, except for expiry, which Registry.Check re-evaluates.
type verdictFile struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex // guards the fields below
	loaded bool
	m      map[string]CheckResult
}

func verdictKey(memKey [32]byte, moduleSum [32]byte) string {
	h := sha256.New()
	h.Write([]byte("opensoul verdict v1\x00"))
	h.Write(moduleSum[:])
	h.Write(memKey[:])
	return hex.EncodeToString(h.Sum(nil))
}

// load reads the file once; a missing or unreadable file is an empty cache.
func (v *verdictFile) load() {
	if v.loaded {
		return
	}
	v.loaded = true
	v.m = v.read()
}

func (v *verdictFile) read() map[string]CheckResult {
	b, err := os.ReadFile(v.path)
	if err != nil {
		return map[string]CheckResult{}
	}
	var f struct {
		Version int                    `json:"version"`
		Checks  map[string]CheckResult `json:"checks"`
	}
	if json.Unmarshal(b, &f) != nil || f.Version != 1 || f.Checks == nil {
		return map[string]CheckResult{}
	}
	return f.Checks
}

func (v *verdictFile) get(key string) (CheckResult, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.load()
	c, ok := v.m[key]
	return c, ok && knownKinds[c.Kind]
}

// put records a verdict and rewrites the file (temp file, then rename, so
// a reader never sees half of it), merged with what other hosts and
// processes wrote since it was read. Failures are logged, never returned.
func (v *verdictFile) put(key string, c CheckResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.load()
	if old, ok := v.m[key]; ok && sameVerdict(old, c) {
		return
	}
	for k, old := range v.read() {
		if _, mine := v.m[k]; !mine {
			v.m[k] = old
		}
	}
	for k := range v.m {
		if len(v.m) < maxVerdicts {
			break
		}
		delete(v.m, k)
	}
	v.m[key] = c
	b, err := json.Marshal(map[string]any{"version": 1, "checks": v.m})
	if err == nil {
		err = writeFileAtomic(v.path, b)
	}
	if err != nil {
		v.log.Warn("cannot save check verdicts", "file", v.path, "err", err)
	}
}

func sameVerdict(a, b CheckResult) bool {
	return a.Valid == b.Valid && a.Kind == b.Kind && a.Reason == b.Reason && a.Hint == b.Hint &&
		(a.ExpiresAt == nil) == (b.ExpiresAt == nil) && (a.ExpiresAt == nil || *a.ExpiresAt == *b.ExpiresAt)
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
