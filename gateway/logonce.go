package gateway

import "sync"

// ErrorOnce remembers the last error reported under each key, so that a
// watcher or writer that fails the same way every few hundred
// milliseconds logs it once: again only when the error changes, or after
// Clear (the thing worked meanwhile). Safe for concurrent use; the zero
// value is ready.
type ErrorOnce struct {
	mu   sync.Mutex
	last map[string]string
}

// Changed reports whether err differs from the last error noted under
// key, and notes it: log when it returns true.
func (e *ErrorOnce) Changed(key string, err error) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last == nil {
		e.last = map[string]string{}
	}
	msg := err.Error()
	if e.last[key] == msg {
		return false
	}
	e.last[key] = msg
	return true
}

// Clear forgets key's error, so the next one is logged even if the same.
func (e *ErrorOnce) Clear(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.last, key)
}
