package gateway

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// BenchmarkFactsChurn measures what one answer costs the profile facts of
// a 1000-profile agent, without HTTP: a success recorded (agentCache.apply
// makes a new snapshot) and the next request's facts (profileList). In
// "limits" every answer also moves one credential's limits (a rejection's
// reset moving with the clock makes a new Limits generation each time);
// in "success" only lastUsed moves. It uses only what the facts memo, the
// limit book and the journal's apply offer, so it runs on older trees too.
func BenchmarkFactsChurn(b *testing.B) {
	for _, limits := range []bool{false, true} {
		name := "success"
		if limits {
			name = "limits"
		}
		b.Run(name+"-1000", func(b *testing.B) { benchFactsChurn(b, 1000, limits) })
	}
}

func benchFactsChurn(b *testing.B, n int, limits bool) {
	t0 := time.Unix(1_800_000_000, 0)
	snap := &Snapshot{
		Agent: store.DefaultAgent, Profiles: map[string]store.Credential{}, Owner: map[string]string{},
		LastGood: map[string]string{}, Stats: NewStatsMap(nil),
		facts: &factsMemo{}, scrub: &scrubMemo{},
	}
	for i := range n {
		id := fmt.Sprintf("anthropic:p%06d", i)
		snap.Profiles[id] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: "k-" + id}
		snap.Owner[id] = store.DefaultAgent
	}
	a := &agentLive{}
	a.snap.Store(snap)
	c := &agentCache{agents: map[string]*agentLive{store.DefaultAgent: a}, cd: func() Cooldowns { return Cooldowns{} }}
	var book limitBook
	for i := range n { // every credential has limits, as after an hour of traffic
		book.set(limitKey{owner: store.DefaultAgent, profile: fmt.Sprintf("anthropic:p%06d", i)}, policy.LimitFacts{Headroom: 0.5, Status: "allowed"})
	}
	req := FactsRequest{Agent: store.DefaultAgent, Provider: "anthropic", Model: "claude-sonnet-5", Limits: book.Load()}
	a.snap.Load().profileList(req, t0)
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	defer func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }()
	for i := range b.N {
		now := t0.Add(time.Duration(i+1) * time.Second)
		id := fmt.Sprintf("anthropic:p%06d", i%n)
		c.apply(store.DefaultAgent, []stateOp{{profile: id, success: true, at: now}})
		if limits {
			other := fmt.Sprintf("anthropic:p%06d", (i*7+3)%n)
			book.set(limitKey{owner: store.DefaultAgent, profile: other},
				policy.LimitFacts{Status: "rejected", ResetAt: now.Add(time.Hour).UnixMilli()})
			req.Limits = book.Load()
		}
		a.snap.Load().profileList(req, now)
	}
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLimitBookSet is one credential's limits changing in a book of
// 1000 credentials' (a new generation each time).
func BenchmarkLimitBookSet(b *testing.B) {
	var book limitBook
	keys := make([]limitKey, 1000)
	for i := range keys {
		keys[i] = limitKey{owner: store.DefaultAgent, profile: fmt.Sprintf("anthropic:p%06d", i)}
		book.set(keys[i], policy.LimitFacts{Headroom: 0.5, Status: "allowed"})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		book.set(keys[i%len(keys)], policy.LimitFacts{Status: "rejected", ResetAt: int64(i)})
	}
}
