package gateway

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsMemoCountsEachSeries: the memoised series are the vector's
// own, one per label values, also when first asked for concurrently.
func TestMetricsMemoCountsEachSeries(t *testing.T) {
	m := newMetrics(nil, time.Now)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				m.observe("anthropic", 200, time.Millisecond)
				m.observe("anthropic", 429, time.Millisecond)
				m.observe("openai", 200, time.Millisecond)
				m.attempt("anthropic", "ok")
				m.attempt("anthropic", "rate_limit")
				m.attempt("openai", "ok")
			}
		})
	}
	wg.Wait()
	got := map[string]float64{}
	series := map[string]int{}
	reg := prometheus.NewRegistry() // only the vectors (m.reg's cooldown collector wants a live)
	reg.MustRegister(m.requests, m.attempts, m.latency)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range mt.GetLabel() {
				key += " " + l.GetValue()
			}
			got[key] = mt.GetCounter().GetValue()
			series[mf.GetName()]++
		}
	}
	for _, key := range []string{
		"opensoul_requests_total 200 anthropic", "opensoul_requests_total 429 anthropic", "opensoul_requests_total 200 openai",
		"opensoul_upstream_attempts_total ok anthropic", "opensoul_upstream_attempts_total rate_limit anthropic",
		"opensoul_upstream_attempts_total ok openai",
	} {
		if got[key] != 800 {
			t.Errorf("%s = %v, want 800", key, got[key])
		}
	}
	if series["opensoul_request_duration_seconds"] != 2 || series["opensoul_requests_total"] != 3 {
		t.Errorf("series: %v, want 2 latency and 3 requests series", series)
	}
}

// TestSessionOfCanonicalKeys: configured session header names in any case
// find the header once put in canonical form.
func TestSessionOfCanonicalKeys(t *testing.T) {
	h := http.Header{}
	h.Set("x-my-session", "s1")
	if id, ok := sessionOf(h, canonicalKeys([]string{"X-MY-SESSION"})); !ok || id != "s1" {
		t.Errorf("sessionOf = %q %v, want s1 true", id, ok)
	}
	h.Set("x-opensoul-session", "mine")
	if id, ok := sessionOf(h, canonicalKeys([]string{"x-my-session"})); !ok || id != "mine" {
		t.Errorf("sessionOf = %q %v, want mine (x-opensoul-session wins)", id, ok)
	}
	if id, ok := sessionOf(http.Header{}, canonicalKeys([]string{"x-my-session"})); ok || id != "" {
		t.Errorf("sessionOf(no header) = %q %v", id, ok)
	}
}
