package gateway

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestPicksHeapMatchesSearch: with a long candidate list handed again and
// again (a cached decision), take's heap picks exactly what a search over
// every candidate picks, while stored lastUsed values only move forward
// (ties included), marks from attempts come in between, and several lists
// share the picks.
func TestPicksHeapMatchesSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{5, 40, 300} {
		var all []string
		for i := range n {
			all = append(all, fmt.Sprintf("anthropic:p%04d", i))
		}
		lists := [][]string{all, all[n/3:], all} // the third: same ids, another slice
		lists[2] = append([]string(nil), all...)
		stored := map[string]int64{}
		var got, want picks
		now := time.UnixMilli(1_800_000_000_000)
		heaped := false
		for step := range 4000 {
			switch k := r.IntN(10); {
			case k < 2: // a success stored, at or after the clock's last reading
				id := all[r.IntN(n)]
				stored[id] = max(stored[id], now.UnixMilli()+int64(r.IntN(40)))
			case k < 3: // an attempt outside take
				id := all[r.IntN(n)]
				got.mark(id, now)
				want.mark(id, now)
			case k < 4:
				now = now.Add(time.Duration(r.IntN(20)) * time.Millisecond)
			default:
				ids := lists[r.IntN(len(lists))]
				g := got.take(ids, now, func(id string) int64 { return stored[id] })
				want.mu.Lock()
				w := leastRecent(ids, func(id string) int64 { return max(want.last[id], stored[id]) })
				want.markLocked(w, now)
				want.mu.Unlock()
				if g != w {
					t.Fatalf("n %d step %d: take picks %s, the search %s", n, step, g, w)
				}
			}
			for _, rot := range got.rot {
				heaped = heaped || rot.heap != nil
			}
		}
		if n >= rotateIndexFrom && !heaped {
			t.Fatalf("n %d: no list was ever served from a heap; the test proves nothing", n)
		}
	}
}
