package policy

import (
	"fmt"
	"hash/maphash"
	"strings"
	"testing"
)

// bigDecision is what a decision over n profiles holds: a candidate and a
// reason for each.
func bigDecision(n int) Decision {
	d := Decision{Reasons: make(map[string]string, n)}
	for i := range n {
		id := fmt.Sprintf("anthropic:profile-%04d", i)
		d.Candidates = append(d.Candidates, id)
		d.Reasons[id] = "candidate #" + fmt.Sprint(i+1) + ": api_key, least recently used first"
	}
	return d
}

// The cache holds at most its byte budget however large each decision is:
// a thousand-profile agent whose facts change on every request must not
// pin the entry limit times a thousand reasons.
func TestCacheStaysWithinItsByteBudget(t *testing.T) {
	c := newDecisionCache(defaultCacheSize)
	c.budget = 1 << 20
	d := bigDecision(200)
	per := entrySize([]byte("key-0000"), d)
	if per < 200*40 {
		t.Fatalf("entrySize %d does not count the reasons", per)
	}
	for i := range 2000 {
		key := []byte(fmt.Sprintf("key-%04d", i))
		c.put(1, key, 0, 100, d)
		if got, ok := c.get(1, key, 50); !ok || len(got.Candidates) != 200 {
			t.Fatalf("entry %d not served right after put", i)
		}
		sum := 0
		for _, e := range c.entries {
			sum += e.size
		}
		if sum != c.size {
			t.Fatalf("after %d puts the cache counts %d bytes, its entries hold %d", i+1, c.size, sum)
		}
		if c.size > c.budget {
			t.Fatalf("after %d puts the cache holds %d bytes, over its budget %d", i+1, c.size, c.budget)
		}
	}
	if n := len(c.entries); n < c.budget/per/2 {
		t.Errorf("only %d entries kept; the budget fits %d", n, c.budget/per)
	}
	// Putting the same key again replaces its entry and its bytes.
	c.reset()
	for range 10 {
		c.put(1, []byte("same"), 0, 100, d)
	}
	if len(c.entries) != 1 || c.size != per-len("key-0000")+len("same") {
		t.Errorf("re-put: %d entries, %d bytes", len(c.entries), c.size)
	}
	// A single decision bigger than a quarter of the budget is not cached.
	huge := bigDecision(10000)
	c.put(1, []byte("huge"), 0, 100, huge)
	if _, ok := c.get(1, []byte("huge"), 50); ok || strings.Contains(fmt.Sprint(c.size), "-") {
		t.Errorf("a decision over a quarter of the budget was cached (size %d)", c.size)
	}
}

// The intern table keeps to its byte budget too, and a number once given
// is never given to another encoding, even after the table starts over.
func TestInternStaysWithinItsByteBudget(t *testing.T) {
	k := &keyIntern{seed: maphash.MakeSeed(), m: map[uint64][]internEntry{}}
	enc := make([]byte, 200<<10) // one list of a few thousand profiles
	ids := map[uint64]string{}
	for i := range 300 {
		copy(enc, fmt.Sprintf("list-%04d", i))
		id := k.intern(enc)
		if prev, dup := ids[id]; dup {
			t.Fatalf("id %d given to %s and list-%04d", id, prev, i)
		}
		ids[id] = fmt.Sprintf("list-%04d", i)
		if k.bytes > internBudget {
			t.Fatalf("after %d lists the table holds %d bytes, over %d", i+1, k.bytes, internBudget)
		}
		if again := k.intern(enc); again != id {
			t.Fatalf("list-%04d interned again got %d, want %d", i, again, id)
		}
	}
}
