package wasm

import (
	"context"
	"maps"
	"os"
	"slices"
)

// fileStamp fingerprints a module file cheaply (size and mtime), so that
// Update reads and hashes only files that look changed.
type fileStamp struct {
	size, mtime int64
	ok          bool // the file could be stat'ed
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ok: true}
}

// refusal remembers a module file that failed to load, so that Update does
// not compile it again until it changes.
type refusal struct {
	stamp fileStamp
	err   error
}

// Update applies a new provider → module file map (the shape NewRegistry
// takes) to a running registry and reloads the module files whose
// contents changed, as a gateway does when its config or a module file is
// edited. A new or changed module is loaded before it replaces the old one,
// so calls never wait for a compile; one that fails to load is refused and
// the module in force kept (the error names the file; a provider whose
// module never loaded gets the new error instead). Answers cached for a
// replaced module are not served again. It returns the providers whose
// module changed, and the refusals, each time they are still in force.
func (r *Registry) Update(ctx context.Context, modules map[string]string) (changed []string, errs []error) {
	r.updateMu.Lock()
	defer r.updateMu.Unlock()
	cur := *r.entries.Load()
	next := maps.Clone(cur)
	want := map[string]string{}
	for _, name := range BuiltinNames() {
		want[name] = ""
	}
	maps.Copy(want, modules)
	var retired []*entry
	for _, name := range slices.Sorted(maps.Keys(want)) {
		e, err := r.updated(ctx, name, want[name], cur[name])
		if err != nil {
			errs = append(errs, err)
		}
		if e != nil {
			next[name] = e
			changed = append(changed, name)
			if old := cur[name]; old != nil {
				retired = append(retired, old)
			}
		}
	}
	for name, old := range cur {
		if _, ok := want[name]; !ok {
			delete(next, name)
			changed = append(changed, name)
			retired = append(retired, old)
		}
	}
	if len(changed) == 0 {
		return nil, errs
	}
	r.entries.Store(&next)
	for _, old := range retired {
		old.mu.Lock()
		if old.mod != nil {
			old.mod.retire()
		} else if old.err == nil {
			old.err = errRetired // a caller that still holds old asks again
		}
		old.mu.Unlock()
	}
	slices.Sort(changed)
	return changed, errs
}

// updated returns the entry that replaces old for provider name with module
// path ("" for the built-in or generic behaviour), or nil to keep old.
func (r *Registry) updated(ctx context.Context, name, path string, old *entry) (*entry, error) {
	if path == "" {
		if old != nil && !old.isFile() {
			return nil, nil
		}
		return r.newEntry(name, ""), nil
	}
	st := stampOf(path)
	if old != nil && old.source == path && r.stamps[path] == st {
		return nil, nil
	}
	if ref, ok := r.refused[path]; ok && ref.stamp == st && old != nil {
		return nil, ref.err
	}
	e := r.newEntry(name, path)
	if old != nil && old.source == path && e.readErr == nil && old.readErr == nil && e.moduleSum() == old.moduleSum() {
		r.stamps[path] = st // touched, not changed
		return nil, nil
	}
	err := e.readErr
	if err == nil {
		_, err = r.load(ctx, e)
	}
	if err != nil && old != nil && old.healthy() {
		r.refused[path] = refusal{stamp: st, err: err}
		return nil, err
	}
	delete(r.refused, path)
	r.stamps[path] = st
	return e, err
}

func (e *entry) isFile() bool { return !e.builtin && e.source != "generic" }

// healthy reports whether e is worth keeping over a replacement that fails:
// it is not known to be broken.
func (e *entry) healthy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.readErr == nil && e.err == nil
}
