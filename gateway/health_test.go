package gateway_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// healthState is one profile state the --check table combines.
type healthState string

const (
	hsValid    healthState = "valid"
	hsExpiring healthState = "expiring"
	hsExpired  healthState = "expired"
	hsMissing  healthState = "missing"
	hsInvalid  healthState = "invalid"
	hsCooling  healthState = "cooling"
	hsDisabled healthState = "disabled"
)

var healthStates = []healthState{hsValid, hsExpiring, hsExpired, hsMissing, hsInvalid, hsCooling, hsDisabled}

const healthModel = "claude-sonnet-5"

func healthProfile(s healthState, now time.Time) (store.Credential, store.UsageStats) {
	ms := now.UnixMilli()
	c := store.Credential{Type: store.TypeToken, Provider: "anthropic", Token: "sk-ant-oat01-" + string(s), Expires: ms + 72*3600_000}
	var u store.UsageStats
	switch s {
	case hsExpiring:
		c.Expires = ms + 3600_000
	case hsExpired:
		c.Expires = ms - 3600_000
	case hsMissing:
		c.Token = ""
	case hsInvalid:
		c.Token = "bad"
	case hsCooling:
		u = store.UsageStats{CooldownUntil: ms + 60_000, CooldownModel: healthModel, ErrorCount: 1}
	case hsDisabled:
		u = store.UsageStats{DisabledUntil: ms + 5*3600_000, DisabledReason: "billing", ErrorCount: 1}
	}
	return c, u
}

// wantExit restates the --check rule of issue 12: 1 always wins (a
// credential expired, invalid or missing; or nothing can serve the model
// in use for a reason needing a person), 2 when something expires within
// 24h or every candidate is cooling, else 0.
func wantExit(states []healthState) int {
	canServe, disabled, cooling, expiring := false, false, false, false
	for _, s := range states {
		switch s {
		case hsExpired, hsMissing, hsInvalid:
			return 1
		case hsValid:
			canServe = true
		case hsExpiring:
			canServe, expiring = true, true
		case hsCooling:
			cooling = true
		case hsDisabled:
			disabled = true
		}
	}
	switch {
	case !canServe && (disabled || !cooling):
		return 1
	case !canServe || expiring:
		return 2
	}
	return 0
}

func healthResolver(t testing.TB) gateway.Resolver {
	engine, err := policy.New(t.Context(), policy.Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	return gateway.Resolver{
		Selector: engine,
		Env:      gateway.Env{},
		Verdict: func(id string, c store.Credential) gateway.Verdict {
			if c.Token == "bad" {
				return gateway.Verdict{Status: gateway.StatusInvalid, Kind: "unknown"}
			}
			return gateway.Verdict{}
		},
	}
}

// TestHealthCheckEveryCombination runs every pair (and single) of profile
// states, with either profile first by id and by explicit store order.
func TestHealthCheckEveryCombination(t *testing.T) {
	r := healthResolver(t)
	now := time.Now()
	ref := "anthropic/" + healthModel
	var combos [][]healthState
	for _, s := range healthStates {
		combos = append(combos, []healthState{s})
		for _, s2 := range healthStates {
			combos = append(combos, []healthState{s, s2})
		}
	}
	for _, combo := range combos {
		for _, order := range []string{"ids", "store order", "reverse store order"} {
			snap := &gateway.Snapshot{Agent: "main", Profiles: map[string]store.Credential{}, Owner: map[string]string{},
				Order: map[string][]string{}, LastGood: map[string]string{}}
			stats := map[string]store.UsageStats{}
			var ids []string
			stateOf := map[string]healthState{}
			for i, s := range combo {
				id := fmt.Sprintf("anthropic:%c-%s", 'a'+i, s)
				c, u := healthProfile(s, now)
				snap.Profiles[id], stats[id], snap.Owner[id] = c, u, "main"
				ids = append(ids, id)
				stateOf[id] = s
			}
			snap.Stats = gateway.NewStatsMap(stats)
			switch order {
			case "store order":
				snap.Order["anthropic"] = ids
			case "reverse store order":
				snap.Order["anthropic"] = []string{ids[len(ids)-1], ids[0]}
			}
			h, err := r.Health(t.Context(), snap, []string{ref}, []string{ref}, now)
			if err != nil {
				t.Fatal(err)
			}
			want := wantExit(combo)
			if got := h.ExitCode(); got != want {
				t.Errorf("%v (%s): exit %d, want %d; problems %v", combo, order, got, want, h.Problems)
			}
			if (want == 0) != (len(h.Problems) == 0) {
				t.Errorf("%v (%s): exit %d with problems %v", combo, order, want, h.Problems)
			}
			mr := h.Model(ref)
			if mr == nil || len(mr.Profiles) != len(combo) {
				t.Fatalf("%v: resolution %+v", combo, mr)
			}
			for _, pr := range mr.Profiles {
				if pr.Reason == "" {
					t.Errorf("%v (%s): %s has no reason", combo, order, pr.ID)
				}
				usable := stateOf[pr.ID] == hsValid || stateOf[pr.ID] == hsExpiring
				if usable != (pr.Role == gateway.RoleServes || pr.Role == gateway.RoleCandidate) {
					t.Errorf("%v (%s): %s has role %s", combo, order, pr.ID, pr.Role)
				}
			}
		}
	}
}

// TestHealthCooldownIsPerModel: a profile cooling for one model still
// serves another, and Models lists the cooling model.
func TestHealthCooldownIsPerModel(t *testing.T) {
	r := healthResolver(t)
	now := time.Now()
	work, _ := healthProfile(hsValid, now)
	home, _ := healthProfile(hsValid, now)
	home.Token += "-home"
	snap := &gateway.Snapshot{Agent: "main",
		Profiles: map[string]store.Credential{"anthropic:work": work, "anthropic:home": home},
		Owner:    map[string]string{"anthropic:work": "main", "anthropic:home": "main"},
		Order:    map[string][]string{"anthropic": {"anthropic:work", "anthropic:home"}},
		Stats: gateway.NewStatsMap(map[string]store.UsageStats{"anthropic:work": {
			CooldownUntil: now.UnixMilli() + 60_000, CooldownModel: "claude-opus-5", ErrorCount: 1}}),
		LastGood: map[string]string{},
	}
	refs := gateway.Models(snap, []string{"anthropic/claude-sonnet-5"}, now)
	if strings.Join(refs, " ") != "anthropic/claude-sonnet-5 anthropic/claude-opus-5" {
		t.Fatalf("models: %v", refs)
	}
	h, err := r.Health(t.Context(), snap, refs, []string{"anthropic/claude-sonnet-5"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Model("anthropic/claude-sonnet-5").Serving; got != "anthropic:work" {
		t.Errorf("sonnet served by %q, want anthropic:work (config order, not cooling for sonnet)", got)
	}
	opus := h.Model("anthropic/claude-opus-5")
	if opus.Serving != "anthropic:home" {
		t.Errorf("opus served by %q, want anthropic:home (work cools for opus)", opus.Serving)
	}
	if pr := opus.Profiles[len(opus.Profiles)-1]; pr.ID != "anthropic:work" || pr.Role != gateway.RoleCooling || pr.Until == 0 {
		t.Errorf("opus's work line: %+v", pr)
	}
	if h.ExitCode() != 0 {
		t.Errorf("a cooldown with another profile serving needs no attention: %v", h.Problems)
	}
}
