package gateway

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/opensoul/opensoul/gateway/store"
)

// TestStatsMapIsACopiedMap: on random sequences of writes, every StatsMap
// reads as the map that cloning and writing would have made — Get,
// Lookup, All (each id once) and Map — and writing a new one never
// changes an older one, across folds of the delta into a new base.
func TestStatsMapIsACopiedMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 2, 100, 1000} {
		plain := map[string]store.UsageStats{}
		for i := range n {
			if r.IntN(2) == 0 {
				plain[fmt.Sprintf("p%04d", i)] = store.UsageStats{LastUsed: int64(i)}
			}
		}
		m := NewStatsMap(maps.Clone(plain))
		type version struct {
			m    StatsMap
			want map[string]store.UsageStats
		}
		var history []version
		for step := range 3000 {
			id := fmt.Sprintf("p%04d", r.IntN(n+5)) // now and then one not stored yet
			u := store.UsageStats{LastUsed: int64(step), ErrorCount: r.IntN(3)}
			plain = maps.Clone(plain)
			plain[id] = u
			m = m.With(id, u)
			if step%97 == 0 {
				history = append(history, version{m, plain})
			}
			if got, ok := m.Lookup(id); !ok || !reflect.DeepEqual(got, u) {
				t.Fatalf("n %d step %d: Lookup(%s) = %v %v, want %v", n, step, id, got, ok, u)
			}
		}
		history = append(history, version{m, plain})
		for i, v := range history {
			if got := v.m.Map(); !reflect.DeepEqual(got, v.want) {
				t.Fatalf("n %d version %d: reads %d entries unlike the copied map's %d", n, i, len(got), len(v.want))
			}
			seen := map[string]bool{}
			for id, u := range v.m.All() {
				if seen[id] {
					t.Fatalf("n %d version %d: All yields %s twice", n, i, id)
				}
				seen[id] = true
				if !reflect.DeepEqual(u, v.want[id]) || !reflect.DeepEqual(v.m.Get(id), u) {
					t.Fatalf("n %d version %d: %s is %v, want %v", n, i, id, u, v.want[id])
				}
			}
			if _, ok := v.m.Lookup("absent"); ok || !reflect.DeepEqual(v.m.Get("absent"), store.UsageStats{}) {
				t.Fatalf("n %d version %d: an absent id reads as present", n, i)
			}
		}
		if len(m.delta) >= foldAt(len(m.base)) {
			t.Fatalf("n %d: the delta holds %d entries over a base of %d: never folded", n, len(m.delta), len(m.base))
		}
	}
}
