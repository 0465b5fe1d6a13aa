package cli

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/opensoul/opensoul/gateway/store"
)

// verdictCache remembers provider-module verdicts between runs, so a warm
// `models status` does not start the WebAssembly runtime at all. Entries
// are keyed by a salted SHA-256 of the credential and the identity of the
// module that judged it (the binary for built-ins, the file for custom
// modules); the secret itself is never written. It is only a cache:
// losing it costs one module run.
type verdictCache struct {
	path string

	mu      sync.Mutex // guards the fields below
	file    verdictFile
	dirty   bool
	modIDs  map[string]string
	loadErr error
}

type verdictFile struct {
	Version int                     `json:"version"`
	Salt    string                  `json:"salt"`
	Entries map[string]verdictEntry `json:"entries"`
}

type verdictEntry struct {
	Status    string `json:"status"`
	Kind      string `json:"kind"`
	Reason    string `json:"reason,omitempty"`
	ValidTill int64  `json:"validTill,omitempty"` // epoch ms; 0: no time bound
}

// maxVerdicts bounds the cache file; past it the cache starts afresh.
const maxVerdicts = 2048

func newVerdictCache(path string) *verdictCache {
	c := &verdictCache{path: path, modIDs: map[string]string{}}
	data, err := os.ReadFile(path)
	if err == nil && json.Unmarshal(data, &c.file) == nil && c.file.Version == 1 && c.file.Salt != "" {
		if c.file.Entries == nil {
			c.file.Entries = map[string]verdictEntry{}
		}
		return c
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	c.file = verdictFile{Version: 1, Salt: hex.EncodeToString(salt), Entries: map[string]verdictEntry{}}
	return c
}

// moduleID identifies the module that judges provider's credentials: the
// file of a custom module, else this executable (which embeds built-ins).
func (c *verdictCache) moduleID(modulePath string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.modIDs[modulePath]; ok {
		return id
	}
	p := modulePath
	if p == "" {
		p, _ = os.Executable()
	}
	id := p
	if fi, err := os.Stat(p); err == nil {
		id = fmt.Sprintf("%s|%d|%d", p, fi.Size(), fi.ModTime().UnixNano())
	}
	c.modIDs[modulePath] = id
	return id
}

func (c *verdictCache) key(moduleID string, cr store.Credential) string {
	h := sha256.New()
	for _, s := range []string{c.file.Salt, moduleID, cr.Provider, cr.Type, cr.Secret(), strconv.FormatInt(cr.Expires, 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (c *verdictCache) get(key string, nowMs int64) (verdictEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.file.Entries[key]
	if !ok || (e.ValidTill != 0 && nowMs >= e.ValidTill) {
		return verdictEntry{}, false
	}
	return e, true
}

func (c *verdictCache) put(key string, e verdictEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.file.Entries) >= maxVerdicts {
		c.file.Entries = map[string]verdictEntry{}
	}
	c.file.Entries[key] = e
	c.dirty = true
}

// save writes the cache if it changed. Errors are ignored on purpose: a
// cache that cannot be written only makes the next run slower.
func (c *verdictCache) save() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return
	}
	data, err := json.Marshal(c.file)
	if err != nil {
		return
	}
	_ = store.WithLock(c.path, func() error { return store.WriteFileAtomic(c.path, data) })
	c.dirty = false
}

// cacheDir is the user's cache dir as the given environment defines it.
func cacheDir(environ map[string]string) string {
	if d := environ["XDG_CACHE_HOME"]; d != "" {
		return filepath.Join(d, "opensoul")
	}
	if h := environ["HOME"]; h != "" {
		return filepath.Join(h, ".cache", "opensoul")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "opensoul-cache")
	}
	return filepath.Join(d, "opensoul")
}
