package wasm

import "sync"

// resultKey is a credential's hash (cacheKey) and the generation of the
// module entry that answered.
type resultKey struct {
	gen uint64
	sum [32]byte
}

// resultCache maps a credential's hash to a module's answer (K is
// resultKey), or a credential to its hash (headersKey). When full it drops
// an arbitrary entry: answers are cheap to recompute.
type resultCache[K comparable, V any] struct {
	max int

	mu sync.RWMutex // guards m
	m  map[K]V
}

func newResultCache[K comparable, V any](max int) *resultCache[K, V] {
	return &resultCache[K, V]{max: max, m: make(map[K]V)}
}

func (c *resultCache[K, V]) get(k K) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	return v, ok
}

func (c *resultCache[K, V]) put(k K, v V) {
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
