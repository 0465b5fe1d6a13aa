package wasm

import (
	"context"
	"slices"
	"testing"
)

// TestBuiltinObserve runs the built-in modules' observe op through the
// host: the declared header prefixes, the answer decoded, utilization
// derived from limit and remaining where the module leaves it out.
func TestBuiltinObserve(t *testing.T) {
	t.Parallel()
	r := builtins(t)
	ctx := context.Background()
	const now = 1_800_000_000_000
	for _, p := range []string{"anthropic", "openai", "openrouter"} {
		if _, err := r.Headers(ctx, p, HeadersRequest{Type: "api_key", Secret: "x-loads-the-module"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.ObserveHeaders("anthropic"); !slices.Contains(got, "anthropic-ratelimit-") {
		t.Errorf("anthropic declares %q", got)
	}
	if got := r.ObserveHeaders("openai"); !slices.Contains(got, "x-ratelimit-") || !slices.Contains(got, "x-codex-") {
		t.Errorf("openai declares %q", got)
	}

	obs, ok, err := r.Observe(ctx, "anthropic", ObserveRequest{Status: 200, Now: now, Headers: map[string]string{
		"anthropic-ratelimit-tokens-limit":     "40000",
		"anthropic-ratelimit-tokens-remaining": "10000",
		"anthropic-ratelimit-tokens-reset":     "2027-01-15T08:00:01Z",
	}})
	if err != nil || !ok || obs.Status != StatusAllowed || len(obs.Windows) != 1 || obs.Scope != ScopeModel {
		t.Fatalf("%+v %v %v (an API key's limits are per model class)", obs, ok, err)
	}
	w := obs.Windows[0]
	if w.Name != "tokens" || *w.Limit != 40000 || *w.Remaining != 10000 || *w.ResetAt != 1800000001000 || *w.Utilization != 0.75 {
		t.Errorf("window %+v", w)
	}

	obs, ok, err = r.Observe(ctx, "anthropic", ObserveRequest{Status: 200, Now: now, Headers: map[string]string{
		"anthropic-ratelimit-unified-status":         "rejected",
		"anthropic-ratelimit-unified-reset":          "1800003600",
		"anthropic-ratelimit-unified-5h-utilization": "1.0",
	}})
	if err != nil || !ok || obs.Status != StatusRejected || *obs.ResetAt != 1800003600000 || *obs.Windows[0].Utilization != 1 || obs.Windows[0].Limit != nil || obs.Scope != "" {
		t.Errorf("%+v %v %v (a subscription's windows are the whole login's)", obs, ok, err)
	}

	obs, ok, err = r.Observe(ctx, "openai", ObserveRequest{Status: 429, Now: now, Headers: map[string]string{
		"retry-after-ms": "2000", "x-ratelimit-remaining-requests": "0", "x-ratelimit-limit-requests": "500"}})
	if err != nil || !ok || obs.Status != StatusRejected || *obs.ResetAt != now+2000 || *obs.Windows[0].Utilization != 1 || obs.Scope != ScopeModel {
		t.Errorf("%+v %v %v", obs, ok, err)
	}
	obs, ok, err = r.Observe(ctx, "openai", ObserveRequest{Status: 200, Now: now, Headers: map[string]string{
		"x-codex-primary-used-percent": "50"}})
	if err != nil || !ok || obs.Scope != "" {
		t.Errorf("a ChatGPT plan's windows are the login's: %+v %v %v", obs, ok, err)
	}
	obs, ok, err = r.Observe(ctx, "openrouter", ObserveRequest{Status: 200, Now: now, Headers: map[string]string{
		"x-ratelimit-limit": "20", "x-ratelimit-remaining": "19"}})
	if err != nil || !ok || obs.Scope != "" {
		t.Errorf("an OpenRouter key's limit is the key's: %+v %v %v", obs, ok, err)
	}

	// google does not observe, and a provider without a module neither.
	for _, p := range []string{"google", "nosuch"} {
		if r.ObserveHeaders(p) != nil {
			t.Errorf("%s declares observe", p)
		}
		if _, ok, err := r.Observe(ctx, p, ObserveRequest{Status: 200}); ok || err != nil {
			t.Errorf("%s observed: %v %v", p, ok, err)
		}
	}
}

// An older module (the WAT one declares no observe) is never asked.
func TestObserveOldModule(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(t, Options{})
	ctx := context.Background()
	r, errs := NewRegistry(ctx, h, map[string]string{"acme": acmeWasm})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	r.Load(ctx)
	if got := r.ObserveHeaders("acme"); got != nil {
		t.Errorf("acme declares %q", got)
	}
	if _, ok, err := r.Observe(ctx, "acme", ObserveRequest{Status: 200, Headers: map[string]string{"x-ratelimit-limit": "1"}}); ok || err != nil {
		t.Errorf("observed: %v %v", ok, err)
	}
}

func TestValidObservation(t *testing.T) {
	t.Parallel()
	n := func(v int64) *int64 { return &v }
	for _, o := range []Observation{
		{Status: "maybe"},
		{Scope: "per-model"},
		{Windows: []Window{{Name: "Tokens"}}},
		{Windows: []Window{{Name: ""}}},
		{Windows: []Window{{Name: "t", Remaining: n(-1)}}},
		{Windows: make([]Window, maxWindows+1)},
	} {
		if validObservation(&o) == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	big := 7.0
	o := Observation{Windows: []Window{{Name: "t", Limit: n(10), Remaining: n(20)}, {Name: "u", Utilization: &big}}}
	if err := validObservation(&o); err != nil || *o.Windows[0].Utilization != 0 || *o.Windows[1].Utilization != 1 {
		t.Errorf("%+v %v", o, err)
	}
}

// BenchmarkObserve is the cost the observe op adds to an answer that
// carries rate-limit headers: Anthropic's six API-key headers.
func BenchmarkObserve(b *testing.B) {
	r := builtins(b)
	ctx := context.Background()
	h := map[string]string{
		"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
		"anthropic-ratelimit-requests-reset": "2027-01-15T08:00:01Z",
		"anthropic-ratelimit-tokens-limit":   "38000", "anthropic-ratelimit-tokens-remaining": "27000",
		"anthropic-ratelimit-tokens-reset": "2027-01-15T08:00:07Z",
	}
	if _, err := r.Headers(ctx, "anthropic", HeadersRequest{Type: "api_key", Secret: "x"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := cpuTime()
	defer func() {
		if c := cpuTime(); c > 0 {
			b.ReportMetric(float64((c-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
		}
	}()
	for b.Loop() {
		if _, ok, err := r.Observe(ctx, "anthropic", ObserveRequest{Status: 200, Headers: h, Now: 1}); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
