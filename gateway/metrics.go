package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/policy"
)

// metrics are the gateway's Prometheus series, on a registry of its own.
// Labels carry provider names, profile ids, reasons and status codes —
// never a secret, and never an email: a profile id holding one (OAuth
// logins are named after the account) is shown as provider:id-<hash>
// (see labelID). Every label value is bounded in length.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	failovers *prometheus.CounterVec
	failures  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	refreshes *prometheus.CounterVec
	handler   http.Handler

	// The series the request path touches, resolved once per label
	// values instead of hashing the labels on every request.
	requestsBy seriesMemo[requestLabels, prometheus.Counter]
	latencyBy  seriesMemo[string, prometheus.Observer]
	attemptsBy seriesMemo[[2]string, prometheus.Counter]
}

type requestLabels struct {
	provider string
	code     int
}

// seriesMemo maps label values to the series a vector gave for them.
// Reads take no lock (a copy-on-write map); it holds no more entries than
// the vector has series.
type seriesMemo[K comparable, V any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[K]V]
}

func (c *seriesMemo[K, V]) get(k K, resolve func(K) V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[K]V
	if m := c.m.Load(); m != nil {
		old = *m
	}
	if v, ok := old[k]; ok {
		return v
	}
	v := resolve(k)
	next := make(map[K]V, len(old)+1)
	maps.Copy(next, old)
	next[k] = v
	c.m.Store(&next)
	return v
}

// attempt counts one upstream attempt of provider with outcome.
func (m *metrics) attempt(provider, outcome string) {
	m.attemptsBy.get([2]string{provider, outcome}, func(k [2]string) prometheus.Counter {
		return m.attempts.WithLabelValues(k[0], k[1])
	}).Inc()
}

func newMetrics(l *live, now func() time.Time) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opensoul_requests_total", Help: "Requests answered, by provider and HTTP status.",
		}, []string{"provider", "code"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opensoul_upstream_attempts_total", Help: "Upstream attempts, by provider and outcome (ok or a failure reason).",
		}, []string{"provider", "outcome"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opensoul_failovers_total", Help: "Times a request moved on to another credential or model.",
		}, []string{"provider"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opensoul_profile_failures_total", Help: "Upstream failures, by profile and reason.",
		}, []string{"provider", "profile", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "opensoul_request_duration_seconds",
			Help:    "Time from request to response headers, including every attempt.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"provider"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opensoul_oauth_refreshes_total", Help: "OAuth refreshes this process made, by provider and result (ok; dead: refused, the login is expired; error: transient).",
		}, []string{"provider", "result"}),
	}
	m.reg.MustRegister(m.requests, m.attempts, m.failovers, m.failures, m.latency, m.refreshes,
		&cooldownCollector{live: l, now: now},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) observe(provider string, code int, d time.Duration) {
	m.requestsBy.get(requestLabels{provider, code}, func(k requestLabels) prometheus.Counter {
		return m.requests.WithLabelValues(k.provider, strconv.Itoa(k.code))
	}).Inc()
	m.latencyBy.get(provider, func(p string) prometheus.Observer {
		return m.latency.WithLabelValues(p)
	}).Observe(d.Seconds())
}

// cooldownCollector reports each known profile's cooldown and disable
// state at scrape time from the live snapshots.
type cooldownCollector struct {
	live *live
	now  func() time.Time
}

var (
	cooldownDesc = prometheus.NewDesc("opensoul_profile_cooldown_seconds",
		"Seconds until the profile leaves its cooldown (0 when usable).", []string{"agent", "profile", "model"}, nil)
	disabledDesc = prometheus.NewDesc("opensoul_profile_disabled",
		"1 when the profile is disabled, by reason.", []string{"agent", "profile", "reason"}, nil)
)

func (c *cooldownCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cooldownDesc
	ch <- disabledDesc
}

func (c *cooldownCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now().UnixMilli()
	for _, snap := range c.live.snapshots() {
		for id := range snap.Profiles {
			u := snap.Stats.Get(id)
			left := 0.0
			if u.CooldownUntil > now {
				left = float64(u.CooldownUntil-now) / 1000
			}
			ch <- prometheus.MustNewConstMetric(cooldownDesc, prometheus.GaugeValue, left, snap.Agent, labelID(id), clip(u.CooldownModel))
			disabled, reason := 0.0, u.DisabledReason
			if u.DisabledUntil > now {
				disabled = 1
			}
			ch <- prometheus.MustNewConstMetric(disabledDesc, prometheus.GaugeValue, disabled, snap.Agent, labelID(id), clip(reason))
		}
	}
}

// maxLabelLen bounds a label value taken from a request or a state file.
const maxLabelLen = 128

func clip(v string) string {
	if len(v) > maxLabelLen {
		return strings.ToValidUTF8(v[:maxLabelLen], "")
	}
	return v
}

// labelID is a profile id fit for a metrics label: one that holds an
// email (or is too long to be a name someone chose) keeps its provider
// and shows a short hash of the rest, which stays stable across scrapes.
func labelID(id string) string {
	if !strings.Contains(id, "@") && len(id) <= maxLabelLen {
		return id
	}
	provider, _, _ := strings.Cut(id, ":")
	sum := sha256.Sum256([]byte(id))
	return clip(provider) + ":id-" + hex.EncodeToString(sum[:5])
}

// serveMetrics answers /metrics. On a listener reachable beyond loopback
// it asks for the gateway token (an agent token when only those are set):
// the series name profiles, agents and environment variables.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	rc := s.cfg.Load()
	if rc.Exposed && !metricsAllowed(rc, r.Header) {
		writeError(w, "", &HTTPError{Code: http.StatusUnauthorized, Type: ReasonAuth,
			Msg: "opensoul: /metrics on a non-loopback listener needs the gateway token (x-opensoul-token or Authorization: Bearer)"})
		return
	}
	s.metrics.handler.ServeHTTP(w, r)
}

func metricsAllowed(rc *runtimeConfig, h http.Header) bool {
	sum := sha256.Sum256([]byte(presentedToken(h)))
	if rc.Token != "" {
		return subtle.ConstantTimeCompare(sum[:], rc.tokenSum[:]) == 1
	}
	ok := false
	for _, want := range rc.agentSums {
		if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
			ok = true
		}
	}
	return ok
}

// StatsReporter is a Selector that counts its decisions (*policy.Engine
// does): /metrics reports them, so the decision cache's hit rate is
// 1 - evaluations/decisions.
type StatsReporter interface{ Stats() policy.Stats }

// decisionCounters are opensoul_policy_decisions_total and
// opensoul_policy_evaluations_total, read from sr at scrape time.
func decisionCounters(sr StatsReporter) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "opensoul_policy_decisions_total",
			Help: "Credential decisions asked of the policy."},
			func() float64 { return float64(sr.Stats().Decisions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "opensoul_policy_evaluations_total",
			Help: "Decisions the policy had to evaluate; the rest came from the decision cache (hit rate = 1 - evaluations/decisions)."},
			func() float64 { return float64(sr.Stats().Evaluations) }),
	}
}

// UsageReporter is what /metrics reads from the usage sink at scrape
// time, when the sink offers it (*usage.Store does): running totals per
// profile and the latest limits. Nothing is counted on the request path.
type UsageReporter interface {
	Spent() []usage.Spent
	Latest() []usage.Limits
}

// usageCollector reports tokens, cost and headroom per credential: its
// provider, owner (the agent whose store holds it, "" for an environment
// or config key: an agent's own profile and main's with the same id are
// two series) and profile. Labels are bounded: owners are the agents with
// a profile file, profile ids go through labelID (it keeps emails out), a
// token kind of four, and a window name a module declared (at most 16 per
// answer, validated); no model, which a request body names freely.
type usageCollector struct{ src UsageReporter }

var (
	tokensDesc = prometheus.NewDesc("opensoul_profile_tokens_total",
		"Tokens the profile's answers reported since the gateway started, by kind (input, output, cache_read, cache_write).",
		[]string{"provider", "owner", "profile", "kind"}, nil)
	costDesc = prometheus.NewDesc("opensoul_profile_cost_usd_total",
		"What the profile's answers cost at list prices (usage.prices) since the gateway started.", []string{"provider", "owner", "profile"}, nil)
	servedDesc = prometheus.NewDesc("opensoul_profile_requests_total",
		"Answers the profile served since the gateway started.", []string{"provider", "owner", "profile"}, nil)
	headroomDesc = prometheus.NewDesc("opensoul_profile_headroom_ratio",
		"Share of a rate-limit window left (0..1) as the provider last reported it, the lowest across models; 0 while rejected.",
		[]string{"provider", "owner", "profile", "window"}, nil)
	resetDesc = prometheus.NewDesc("opensoul_profile_limit_reset_timestamp_seconds",
		"When the window refills, as the provider last reported it.", []string{"provider", "owner", "profile", "window"}, nil)
)

func (c usageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tokensDesc, costDesc, servedDesc, headroomDesc, resetDesc} {
		ch <- d
	}
}

func (c usageCollector) Collect(ch chan<- prometheus.Metric) {
	for _, sp := range c.src.Spent() {
		p, o, id := clip(sp.Provider), clip(sp.Owner), labelID(sp.Profile)
		for kind, n := range map[string]int64{"input": sp.Input, "output": sp.Output, "cache_read": sp.CacheRead, "cache_write": sp.CacheWrite} {
			ch <- prometheus.MustNewConstMetric(tokensDesc, prometheus.CounterValue, float64(n), p, o, id, kind)
		}
		ch <- prometheus.MustNewConstMetric(costDesc, prometheus.CounterValue, float64(sp.CostMicros)/1e6, p, o, id)
		ch <- prometheus.MustNewConstMetric(servedDesc, prometheus.CounterValue, float64(sp.Requests), p, o, id)
	}
	type win struct{ provider, owner, profile, name string }
	left, reset := map[win]float64{}, map[win]time.Time{}
	for _, l := range c.src.Latest() {
		for _, w := range l.Windows {
			h := w.Headroom()
			if l.Status == "rejected" {
				h = 0
			}
			if h < 0 {
				continue
			}
			k := win{clip(l.Provider), clip(l.Agent), labelID(l.Profile), w.Name}
			if cur, ok := left[k]; !ok || h < cur {
				left[k], reset[k] = h, w.ResetAt
			}
		}
	}
	for k, h := range left {
		ch <- prometheus.MustNewConstMetric(headroomDesc, prometheus.GaugeValue, h, k.provider, k.owner, k.profile, k.name)
		if t := reset[k]; !t.IsZero() {
			ch <- prometheus.MustNewConstMetric(resetDesc, prometheus.GaugeValue, float64(t.Unix()), k.provider, k.owner, k.profile, k.name)
		}
	}
}
