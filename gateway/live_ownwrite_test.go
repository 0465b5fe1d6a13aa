package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// ownWriteLive returns a live cache over a store with three API-key
// profiles in main's store and three in agent x's.
func ownWriteLive(t *testing.T, now func() time.Time) (*live, *store.Store) {
	t.Helper()
	st := store.New(t.TempDir())
	for _, agent := range []string{store.DefaultAgent, "x"} {
		err := st.UpdateProfiles(agent, func(p *store.Profiles) error {
			for i := range 3 {
				p.Profiles[fmt.Sprintf("anthropic:%s%d", agent, i)] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: fmt.Sprintf("sk-ownwrite-%s-%d", agent, i)}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return newLive(st, slog.New(slog.NewTextHandler(io.Discard, nil)), now, func() Cooldowns { return Cooldowns{} }), st
}

// sameState fails unless snap's stats, lastGood and recent models are
// those of the agent's files read afresh.
func sameState(t *testing.T, st *store.Store, snap *Snapshot, what string) {
	t.Helper()
	fresh, err := LoadSnapshot(st, snap.Agent)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := snap.Stats.Map(), fresh.Stats.Map(); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: stats in memory\n %+v\nbut the files hold\n %+v", what, got, want)
	}
	if !maps.Equal(snap.LastGood, fresh.LastGood) || !maps.Equal(snap.Recent, fresh.Recent) {
		t.Fatalf("%s: lastGood %v, recent %v in memory; the files hold %v, %v", what, snap.LastGood, snap.Recent, fresh.LastGood, fresh.Recent)
	}
}

// TestOwnWriteIsNotReloaded: after the journal wrote what the gateway
// learned (main's and x's state files), the next poll does not read the
// agent again (it used to reload it wholesale every flush: every profile,
// secret and fact), and what it keeps in memory is what the files hold.
func TestOwnWriteIsNotReloaded(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	l, st := ownWriteLive(t, func() time.Time { return at })
	a, err := l.agent("x")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		at = at.Add(time.Minute)
		l.record("x", stateOp{profile: "anthropic:x0", success: true, at: at},
			stateOp{profile: "anthropic:x0", provider: "anthropic", lastGood: true, at: at},
			stateOp{recent: "anthropic/claude-sonnet-5", at: at})
		l.record(store.DefaultAgent, stateOp{profile: "anthropic:main1", reason: ReasonTimeout, at: at})
		before := a.snap.Load()
		loads := l.loads.Load()
		l.flush()
		l.poll()
		if l.loads.Load() != loads || a.snap.Load() != before {
			t.Fatalf("round %d: the poll after the journal's own write reloaded the agent", round)
		}
		sameState(t, st, a.snap.Load(), fmt.Sprintf("round %d", round))
	}
}

// TestOutsideWriteAroundOwnWriteIsSeen: an outside write (the CLI's)
// that lands between the gateway's last read and its own write is in the
// file the gateway writes; the poll after that write must still read the
// file, not take it for the gateway's own. One that lands after the
// gateway's write is read too.
func TestOutsideWriteAroundOwnWriteIsSeen(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	l, st := ownWriteLive(t, func() time.Time { return at })
	a, err := l.agent("x")
	if err != nil {
		t.Fatal(err)
	}
	outside := func(owner, reason string) {
		t.Helper()
		err := st.UpdateState(owner, func(s *store.State) error {
			s.UsageStats["anthropic:"+owner+"2"] = &store.UsageStats{DisabledReason: reason, DisabledUntil: 1}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for round, owner := range []string{"x", store.DefaultAgent, "x"} {
		for _, after := range []bool{false, true} {
			reason := fmt.Sprintf("outside-%d-%v", round, after)
			at = at.Add(time.Minute)
			if !after {
				outside(owner, reason)
			}
			l.record(owner, stateOp{profile: "anthropic:" + owner + "0", success: true, at: at})
			l.flush()
			if after {
				outside(owner, reason)
			}
			l.poll()
			if got := a.snap.Load().Stats.Get("anthropic:" + owner + "2").DisabledReason; got != reason {
				t.Fatalf("round %d, outside write %s the gateway's: the poll after both shows %q, want %q", round, map[bool]string{false: "before", true: "after"}[after], got, reason)
			}
			sameState(t, st, a.snap.Load(), reason)
		}
	}
}

// TestOutsideWriteRacingJournalIsSeen: a CLI-style writer (the store's
// locked update) changes main's state file while the gateway records,
// writes and polls as fast as it can; every outside change reaches the
// gateway's snapshot (none is taken for the gateway's own write), and
// when all stops, memory and files agree (no operation counted twice).
func TestOutsideWriteRacingJournalIsSeen(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Add(int64(time.Millisecond))) }
	l, st := ownWriteLive(t, now)
	a, err := l.agent(store.DefaultAgent)
	if err != nil {
		t.Fatal(err)
	}
	// The journal writes more often than the cache polls: an outside
	// write is mostly followed by one of the journal's before the poll
	// looks.
	l.agentCache.start(5 * time.Millisecond)
	l.journal.start(time.Millisecond)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the gateway answering requests
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			at := now()
			if i%3 == 0 {
				l.record(store.DefaultAgent, stateOp{profile: "anthropic:main1", reason: ReasonTimeout, at: at})
			} else {
				l.record(store.DefaultAgent, stateOp{profile: "anthropic:main0", success: true, at: at},
					stateOp{profile: "anthropic:main0", provider: "anthropic", lastGood: true, at: at})
			}
			if i%4 == 0 {
				time.Sleep(100 * time.Microsecond) // let the writer and the poll in
			}
		}
	}()
	for k := 1; k <= 60; k++ {
		reason := fmt.Sprintf("outside-%d", k)
		err := st.UpdateState(store.DefaultAgent, func(s *store.State) error {
			u := s.UsageStats["anthropic:main2"]
			if u == nil {
				u = &store.UsageStats{}
				s.UsageStats["anthropic:main2"] = u
			}
			u.DisabledReason, u.DisabledUntil = reason, 1
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for a.snap.Load().Stats.Get("anthropic:main2").DisabledReason != reason {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				l.Close()
				t.Fatalf("outside write %d never reached the gateway (it took the file for its own)", k)
			}
			time.Sleep(200 * time.Microsecond)
		}
		if k%2 == 0 {
			time.Sleep(time.Duration(k%7) * 300 * time.Microsecond) // land at varied points of the journal's cycle
		}
	}
	close(stop)
	wg.Wait()
	l.Close() // stops polling, then the last flush
	// A reload that overlapped a journal write may have counted the ops
	// being written twice in memory; the journal then marks the agents
	// stale and the next poll reloads them (agentCache.written). Close
	// stopped the polls, so run that one here: the files are the truth.
	l.poll()
	sameState(t, st, a.snap.Load(), "after the run")
	if got := slices.Collect(maps.Keys(a.snap.Load().Stats.Map())); len(got) < 3 {
		t.Fatalf("stats for %v only: the run recorded nothing", got)
	}
}
