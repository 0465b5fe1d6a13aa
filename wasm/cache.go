package wasm

import "sync"

// resultKey is a credential's hash (cacheKey) and the generation of the
// module entry that answered.
type resultKey struct {
	gen uint64
	sum [32]byte
}

// resultCache maps a credential's hash to a module's answer. When full it
// drops an arbitrary entry: answers are cheap to recompute.
type resultCache[V any] struct {
	max int

	mu sync.RWMutex // guards m
	m  map[resultKey]V
}

func newResultCache[V any](max int) *resultCache[V] {
	return &resultCache[V]{max: max, m: make(map[resultKey]V)}
}

func (c *resultCache[V]) get(k resultKey) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	return v, ok
}

func (c *resultCache[V]) put(k resultKey, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = v
}
