package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CorruptError reports a state file that exists but cannot be parsed.
// Such a file is never overwritten: writes refuse until a person fixes it.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	var se *json.SyntaxError
	if errors.As(e.Err, &se) {
		return fmt.Sprintf("%s is not valid JSON (at byte %d: %v); fix or move the file, nothing was written", e.Path, se.Offset, se)
	}
	var te *json.UnmarshalTypeError
	if errors.As(e.Err, &te) {
		return fmt.Sprintf("%s: field %q has a %s where %s was expected; fix or move the file, nothing was written", e.Path, te.Field, te.Value, te.Type)
	}
	return fmt.Sprintf("%s: %v; fix or move the file, nothing was written", e.Path, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// readJSON decodes path into v. A missing or empty file leaves v untouched
// and reports exists=false.
func readJSON(path string, v any) (exists bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return true, &CorruptError{Path: path, Err: err}
	}
	return true, nil
}

// withLock runs fn holding an exclusive flock on path+".lock". The OS
// releases the lock if the process dies, so a crash never leaves a stale lock.
func withLock(path string, fn func() error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	lf, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer lf.Close()
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	return fn()
}

// WriteFileAtomic replaces path with data so that a reader or a crash sees
// either the old or the new content, never a torn file: temp file in the
// same dir, fsync, rename, fsync the dir. The file is 0600 and its dir 0700.
// Callers that read-modify-write must hold the file's lock (see update).
func WriteFileAtomic(path string, data []byte) error {
	_, err := writeFileAtomic(path, data)
	return err
}

// writeFileAtomic is WriteFileAtomic, returning the Stamp of the file it
// wrote, taken before the rename (which keeps size, mtime and inode): a
// stat after it could see another writer's file.
func writeFileAtomic(path string, data []byte) (Stamp, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Stamp{}, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return Stamp{}, err
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return Stamp{}, err
	}
	if _, err := tmp.Write(data); err != nil {
		return Stamp{}, err
	}
	if err := tmp.Sync(); err != nil {
		return Stamp{}, err
	}
	fi, err := tmp.Stat()
	if err != nil {
		return Stamp{}, err
	}
	if err := tmp.Close(); err != nil {
		return Stamp{}, err
	}
	if err := os.Rename(tmpName, path); err != nil {
		return Stamp{}, err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return stampOfInfo(fi), nil
}

// update re-reads path under its lock into a fresh value, applies fn and
// writes the result atomically. fn returning errNoChange skips the write.
func update[T any](path string, fresh func() *T, fn func(*T) error) error {
	_, err := updateStamped(path, fresh, fn)
	return err
}

// Written tells a watcher of a file its own write from others' (see
// Store.UpdateStateStamped): the file the update read and the file it
// wrote in its place. OK is false when it wrote nothing (NoChange) or
// the file changed while it was being read (a writer that does not take
// the lock): then Before says nothing.
type Written struct {
	Before, After Stamp
	OK            bool
}

// updateStamped is update, returning what it wrote (see Written).
func updateStamped[T any](path string, fresh func() *T, fn func(*T) error) (Written, error) {
	var w Written
	err := withLock(path, func() error {
		before := StampOf(path)
		v := fresh()
		if _, err := readJSON(path, v); err != nil {
			return err
		}
		steady := StampOf(path) == before
		if err := fn(v); err != nil {
			if errors.Is(err, errNoChange) {
				return nil
			}
			return err
		}
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		after, err := writeFileAtomic(path, append(data, '\n'))
		if err != nil {
			return err
		}
		w = Written{Before: before, After: after, OK: steady}
		return nil
	})
	return w, err
}

// errNoChange lets an update function say there is nothing to write.
var errNoChange = errors.New("no change")

// NoChange is returned by an update function that decided not to write.
var NoChange = errNoChange

// WithLock runs fn holding the exclusive lock of path (path+".lock"), for
// files outside this package that follow the same write protocol (.env).
func WithLock(path string, fn func() error) error { return withLock(path, fn) }
