package gateway

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

func TestProfileAndModuleStatus(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1764032400000)
	at := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	key := store.Credential{Type: store.TypeAPIKey, Key: "k"}
	cases := []struct {
		name     string
		c        store.Credential
		shape    string // ProfileStatus
		valid    string // ModuleStatus when the module accepts it
		rejected string // ModuleStatus when the module rejects it
	}{
		{"api key", key, StatusStatic, StatusStatic, StatusInvalid},
		{"token without expiry", store.Credential{Type: store.TypeToken, Token: "t"}, StatusStatic, StatusStatic, StatusInvalid},
		{"token with time left", store.Credential{Type: store.TypeToken, Token: "t", Expires: at(72 * time.Hour)}, StatusOK, StatusOK, StatusInvalid},
		{"token expiring soon", store.Credential{Type: store.TypeToken, Token: "t", Expires: at(time.Hour)}, StatusExpiring, StatusExpiring, StatusInvalid},
		{"token expired", store.Credential{Type: store.TypeToken, Token: "t", Expires: at(-time.Minute)}, StatusExpired, StatusExpired, StatusExpired},
		// The gateway refreshes such a login before use (Refresher).
		{"oauth past expiry, refresh token kept", store.Credential{Type: store.TypeOAuth, Access: "a", Refresh: "r", Expires: at(-time.Minute)}, StatusOK, StatusOK, StatusOK},
		{"oauth whose refresh was refused", store.Credential{Type: store.TypeOAuth, Access: "a", Refresh: "r", Expires: at(time.Hour), RefreshError: "invalid_grant"}, StatusExpired, StatusExpired, StatusExpired},
		{"oauth past expiry without a refresh token", store.Credential{Type: store.TypeOAuth, Access: "a", Expires: at(-time.Minute)}, StatusExpired, StatusExpired, StatusExpired},
		{"oauth with only a refresh token", store.Credential{Type: store.TypeOAuth, Refresh: "r", Expires: at(time.Hour)}, StatusMissing, StatusMissing, StatusInvalid},
		{"no secret", store.Credential{Type: store.TypeToken}, StatusMissing, StatusMissing, StatusInvalid},
	}
	for _, tc := range cases {
		if got := ProfileStatus(tc.c, now); got != tc.shape {
			t.Errorf("%s: ProfileStatus = %q, want %q", tc.name, got, tc.shape)
		}
		if got := ModuleStatus(tc.c, now, true); got != tc.valid {
			t.Errorf("%s: ModuleStatus(valid) = %q, want %q", tc.name, got, tc.valid)
		}
		if got := ModuleStatus(tc.c, now, false); got != tc.rejected {
			t.Errorf("%s: ModuleStatus(rejected) = %q, want %q", tc.name, got, tc.rejected)
		}
	}
}

// TestBuildInputLeavesModelScopeToPolicy: a rate limit's model reaches the
// policy as cooldownModel; the built-in policy then blocks only that model.
func TestBuildInputLeavesModelScopeToPolicy(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1764032400000)
	snap := &Snapshot{
		Profiles: map[string]store.Credential{
			"anthropic:a": {Type: store.TypeAPIKey, Provider: "anthropic", Key: "ka"},
			"anthropic:b": {Type: store.TypeAPIKey, Provider: "anthropic", Key: "kb"},
		},
		Stats: NewStatsMap(map[string]store.UsageStats{
			"anthropic:a": {CooldownUntil: now.Add(time.Minute).UnixMilli(), CooldownModel: "claude-opus-5"},
		}),
	}
	engine, err := policy.New(t.Context(), policy.Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	for model, want := range map[string][]string{
		"claude-opus-5":   {"anthropic:b"},
		"claude-sonnet-5": {"anthropic:a", "anthropic:b"},
	} {
		in := BuildInput(snap, nil, nil, FactsRequest{Agent: "main", Provider: "anthropic", Model: model}, now)
		if m := in.ProfileFacts()[0].CooldownModel; m == nil || *m != "claude-opus-5" || in.Profiles[0].CooldownUntil == 0 {
			t.Fatalf("%s: anthropic:a facts %+v, want its cooldown and model", model, in.Profiles[0])
		}
		d, err := engine.Decide(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(d.Candidates, want) {
			t.Errorf("%s: candidates %v, want %v (reasons %v)", model, d.Candidates, want, d.Reasons)
		}
		if model == "claude-opus-5" && !strings.Contains(d.Reasons["anthropic:a"], "in cooldown for model claude-opus-5 until") {
			t.Errorf("reason: %q", d.Reasons["anthropic:a"])
		}
	}
}
