package gateway_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

// TestRecentModels: the models requests ask for are noted in the agent's
// auth-state.json (at most every 10 minutes per model), so the one-truth
// resolver (Models) covers them beside the models in use and those with a
// cooldown, in this process and in the CLI's.
func TestRecentModels(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.profiles("main", map[string]store.Credential{"anthropic:a": anthropicKey(keyA)}, nil)
	f.anthropic.set(keyA, answer{})
	first := f.clock.Now().UnixMilli()
	if resp, body := f.messages("claude-opus-5", nil); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got := f.state("main").RecentModels["anthropic/claude-opus-5"]; got != first {
		t.Fatalf("recentModels[anthropic/claude-opus-5] = %d, want %d", got, first)
	}
	f.clock.Advance(time.Minute)
	f.messages("claude-opus-5", nil)
	if got := f.state("main").RecentModels["anthropic/claude-opus-5"]; got != first {
		t.Errorf("a request a minute later rewrote the record: %d, want %d", got, first)
	}
	f.clock.Advance(10 * time.Minute)
	f.messages("claude-opus-5", nil)
	if got := f.state("main").RecentModels["anthropic/claude-opus-5"]; got != f.clock.Now().UnixMilli() {
		t.Errorf("after 11 minutes the record was not refreshed: %d", got)
	}

	snap, err := gateway.LoadSnapshot(f.st, "main")
	if err != nil {
		t.Fatal(err)
	}
	refs := gateway.Models(snap, []string{"anthropic/claude-sonnet-5"}, f.clock.Now())
	if !slices.Equal(refs, []string{"anthropic/claude-sonnet-5", "anthropic/claude-opus-5"}) {
		t.Errorf("Models = %v, want the model in use, then the recent one", refs)
	}
	if refs := gateway.Models(snap, nil, f.clock.Now().Add(gateway.RecentWindow)); slices.Contains(refs, "anthropic/claude-opus-5") {
		t.Errorf("a model requested over %s ago is still recent: %v", gateway.RecentWindow, refs)
	}

	// The record stays small whatever clients send.
	for i := range 3 * store.MaxRecentModels {
		f.messages(fmt.Sprintf("claude-x-%d", i), nil)
	}
	if n := len(f.state("main").RecentModels); n != store.MaxRecentModels {
		t.Errorf("%d recent models recorded, want the bound %d", n, store.MaxRecentModels)
	}
}
