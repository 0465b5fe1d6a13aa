package connect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/tidwall/sjson"

	"github.com/opensoul/opensoul/gateway/store"
)

// Locate is where the client reads the file: the first of its location
// variables that is set (getenv), else the default path under home.
func (f *File) Locate(home string, getenv func(string) string) string {
	for _, l := range f.spec.locate {
		if v := getenv(l.Var); v != "" {
			return filepath.Join(v, l.Name)
		}
	}
	return filepath.Join(home, strings.TrimPrefix(f.spec.path, "~/"))
}

// Written says what Write did.
type Written struct {
	Path    string `json:"path"`
	Changed bool   `json:"changed"` // false: the file already held the block
	Backup  string `json:"backup"`  // the copy of the file before the change; "" when there was none
}

// Write merges the block into the file at path, keeping everything else
// in it: a TOML block replaces its own keys and table, a JSON object is
// set at its path. The old file is copied to path.bak-<time> first; a
// file that already holds the block is left alone (no backup), so a second
// run changes nothing. A file that does not parse is refused, not
// rewritten. The write is atomic, under the file's lock, mode 0600
// (gateway/store's protocol).
func (f *File) Write(path string, now time.Time) (Written, error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // replace the file a symlink points to, not the link
	}
	out := Written{Path: path}
	err := store.WithLock(path, func() error {
		old, err := os.ReadFile(path)
		exists := err == nil
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		merged, err := f.merge(old)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if exists && bytes.Equal(merged, old) {
			return nil
		}
		if exists {
			if out.Backup, err = backup(path, old, now); err != nil {
				return err
			}
		}
		out.Changed = true
		return store.WriteFileAtomic(path, merged)
	})
	return out, err
}

// backup writes old beside path as path.bak-<UTC time>, never over an
// earlier backup.
func backup(path string, old []byte, now time.Time) (string, error) {
	base := path + ".bak-" + now.UTC().Format("20060102T150405Z")
	name := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			break
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
	if err := store.WriteFileAtomic(name, old); err != nil {
		return "", fmt.Errorf("backup of %s: %w", path, err)
	}
	return name, nil
}

func (f *File) merge(old []byte) ([]byte, error) {
	switch f.Format {
	case "toml":
		return mergeTOML(string(old), f.block)
	case "json":
		return mergeJSON(old, f.spec.jsonPath, f.block)
	}
	return nil, fmt.Errorf("unknown format %q", f.Format)
}

// mergeTOML sets block's top-level keys (the lines before its first table
// header) in old's top level and replaces or appends block's table,
// keeping every other line of old. The result must parse and hold the
// block's values, else nothing is written.
func mergeTOML(old, block string) ([]byte, error) {
	var before map[string]any
	if _, err := toml.Decode(old, &before); err != nil {
		return nil, fmt.Errorf("does not parse as TOML, so it was not changed (fix it or add the block by hand): %w", err)
	}
	blockLines := strings.Split(strings.TrimRight(block, "\n"), "\n")
	h := firstHeader(blockLines)
	top, table := blockLines[:h], blockLines[h:]

	lines := []string{}
	if old != "" {
		lines = strings.Split(strings.TrimRight(old, "\n"), "\n")
	}
	// The table: replace old's copy (header to the next header) or append.
	header := strings.TrimSpace(table[0])
	start := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == header {
			start = i
			break
		}
	}
	if start >= 0 {
		end := start + 1 + firstHeader(lines[start+1:])
		rest := lines[end:]
		lines = append(append(lines[:start:start], table...), func() []string {
			if len(rest) > 0 {
				return append([]string{""}, rest...)
			}
			return nil
		}()...)
	} else {
		if len(lines) > 0 {
			lines = append(lines, "")
		}
		lines = append(lines, table...)
	}
	// The top-level keys: replace in old's top level or add before its
	// first table.
	for _, kv := range top {
		key, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		key = strings.TrimSpace(key)
		h := firstHeader(lines)
		done := false
		for i := range h {
			if k, _, ok := strings.Cut(lines[i], "="); ok && strings.TrimSpace(k) == key && !strings.HasPrefix(strings.TrimSpace(lines[i]), "#") {
				lines[i], done = kv, true
				break
			}
		}
		if !done {
			at := h // after old's top-level lines, blank lines before the first table dropped
			for at > 0 && strings.TrimSpace(lines[at-1]) == "" {
				at--
			}
			ins := []string{kv}
			if h < len(lines) {
				ins = append(ins, "")
			}
			lines = append(lines[:at:at], append(ins, lines[h:]...)...)
		}
	}
	merged := strings.Join(lines, "\n") + "\n"
	var got, want map[string]any
	if _, err := toml.Decode(merged, &got); err != nil {
		return nil, fmt.Errorf("merging the block would not parse, so the file was not changed (add the block by hand): %w", err)
	}
	toml.Decode(block, &want) // parsed when the recipe was built
	if !holds(got, want) {
		return nil, errors.New("merging the block would not give its values (another definition wins?), so the file was not changed; add the block by hand")
	}
	return []byte(merged), nil
}

// firstHeader is the index of the first TOML table header in lines
// (len(lines) when none).
func firstHeader(lines []string) int {
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "[") {
			return i
		}
	}
	return len(lines)
}

// holds says whether got has every value of want (maps compared key by
// key, everything else equal).
func holds(got, want map[string]any) bool {
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			return false
		}
		if wm, ok := w.(map[string]any); ok {
			gm, ok := g.(map[string]any)
			if !ok || !holds(gm, wm) {
				return false
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			return false
		}
	}
	return true
}

// mergeJSON sets the object block at the dotted path in old (an empty
// file is {}), keeping the rest of old byte for byte. A file indented
// the way encoding/json indents (OpenClaw's own writes) stays indented.
func mergeJSON(old []byte, path, block string) ([]byte, error) {
	if len(bytes.TrimSpace(old)) == 0 {
		old = []byte("{}")
	}
	if !json.Valid(old) {
		return nil, errors.New("is not plain JSON (comments or trailing commas?), so it was not changed; add the entry by hand")
	}
	var top any
	json.Unmarshal(old, &top)
	if _, ok := top.(map[string]any); !ok {
		return nil, errors.New("does not hold a JSON object, so it was not changed")
	}
	merged, err := sjson.SetRawBytes(old, path, compact(block))
	if err != nil {
		return nil, err
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, compact(string(old)), "", "  ")
	if wasPretty := bytes.Equal(bytes.TrimSpace(pretty.Bytes()), bytes.TrimSpace(old)); wasPretty || string(old) == "{}" {
		pretty.Reset()
		json.Indent(&pretty, compact(string(merged)), "", "  ")
		merged = append(pretty.Bytes(), '\n')
	}
	if !json.Valid(merged) {
		return nil, errors.New("merging the entry would not give valid JSON, so the file was not changed")
	}
	return merged, nil
}
