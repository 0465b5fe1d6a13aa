package gateway

import (
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// Failure reasons (DESIGN §4). A provider module may answer any of them;
// the built-in classifier uses them for everything a module leaves alone.
const (
	ReasonRateLimit       = "rate_limit"
	ReasonAuth            = "auth"
	ReasonBilling         = "billing"
	ReasonCredentialScope = "credential_scope"
	ReasonModelNotFound   = "model_not_found"
	ReasonTimeout         = "timeout" // also upstream 5xx
	ReasonFormat          = "format"
	// ReasonCooldown marks a profile skipped because it is cooling down
	// (not a failure of this request).
	ReasonCooldown = "cooldown"
)

// DisabledUntilChanged is the disabledUntil written for a profile that
// stays disabled until its credential is changed or its cooldown cleared
// (auth, credential_scope): 9999-12-31T23:59:59Z in epoch ms.
const DisabledUntilChanged int64 = 253402300799000

// Cooldowns tunes the cooldown math. The zero value means the defaults of
// DESIGN §4 (24 h window, billing 5 h doubling to 24 h).
type Cooldowns struct {
	FailureWindow  time.Duration
	BillingBackoff time.Duration
	BillingMax     time.Duration
}

func (c Cooldowns) withDefaults() Cooldowns {
	if c.FailureWindow <= 0 {
		c.FailureWindow = 24 * time.Hour
	}
	if c.BillingBackoff <= 0 {
		c.BillingBackoff = 5 * time.Hour
	}
	if c.BillingMax < c.BillingBackoff {
		c.BillingMax = max(24*time.Hour, c.BillingBackoff)
	}
	return c
}

// rateLimitSteps are the rate-limit cooldowns without Retry-After.
var rateLimitSteps = []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute}

const (
	transientAfter    = 3 // timeouts/5xx in a row before a cooldown
	transientCooldown = 30 * time.Second
)

// recordsOnProfile reports whether a failure reason is the credential's
// fault and so changes its usage stats.
func recordsOnProfile(reason string) bool {
	return reason != ReasonModelNotFound && reason != ReasonFormat && reason != ""
}

// ApplyFailure updates u for one failure of reason on model at now.
// retryAfter, when positive, is the provider's Retry-After.
func ApplyFailure(u *store.UsageStats, reason, model string, retryAfter time.Duration, now time.Time, cfg Cooldowns) {
	if !recordsOnProfile(reason) {
		return
	}
	cfg = cfg.withDefaults()
	ms := now.UnixMilli()
	n := countFailure(u, reason, ms, cfg)

	switch {
	case reason == ReasonRateLimit:
		d := retryAfter
		if d <= 0 {
			d = rateLimitSteps[min(n, len(rateLimitSteps))-1]
		}
		u.CooldownUntil, u.CooldownModel = ms+d.Milliseconds(), model
	case reason == ReasonAuth || reason == ReasonCredentialScope:
		u.DisabledUntil, u.DisabledReason = DisabledUntilChanged, reason
	case reason == ReasonBilling:
		d := cfg.BillingBackoff
		for i := 1; i < n && d < cfg.BillingMax; i++ {
			d *= 2
		}
		d = min(d, cfg.BillingMax)
		u.DisabledUntil, u.DisabledReason = ms+d.Milliseconds(), reason
	case reason == ReasonTimeout:
		if n >= transientAfter {
			d := max(retryAfter, transientCooldown)
			u.CooldownUntil, u.CooldownModel = ms+d.Milliseconds(), ""
		}
	default: // a reason a module invented: treat as transient, never disable
		if retryAfter > 0 {
			u.CooldownUntil, u.CooldownModel = ms+retryAfter.Milliseconds(), model
		}
	}
}

// countFailure counts one failure of reason at ms (epoch), starting the
// counts again after a failure-free window, and returns reason's count.
func countFailure(u *store.UsageStats, reason string, ms int64, cfg Cooldowns) int {
	if u.LastFailureAt != 0 && ms-u.LastFailureAt > cfg.FailureWindow.Milliseconds() {
		u.ErrorCount, u.FailureCounts = 0, nil
	}
	if u.FailureCounts == nil {
		u.FailureCounts = map[string]int{}
	}
	u.ErrorCount++
	u.FailureCounts[reason]++
	u.LastFailureAt = ms
	return u.FailureCounts[reason]
}

// ApplyScope records that the provider accepts the credential from one
// client only (a credential_scope answer naming it): the profile is not
// disabled but scoped, and the policy keeps it for that client's requests
// (input.profiles[].scope). It stays scoped until the secret changes or
// the user clears it (clear-cooldown); a success does not lift it.
func ApplyScope(u *store.UsageStats, client string, now time.Time, cfg Cooldowns) {
	countFailure(u, ReasonCredentialScope, now.UnixMilli(), cfg.withDefaults())
	u.Scope = client
}

// ApplySuccess clears u's cooldown and error counts and records lastUsed.
func ApplySuccess(u *store.UsageStats, now time.Time) {
	u.LastUsed = now.UnixMilli()
	u.CooldownUntil, u.CooldownModel = 0, ""
	u.DisabledUntil, u.DisabledReason = 0, ""
	u.ErrorCount, u.FailureCounts = 0, nil
}

// successIsNoop reports whether recording a success would change nothing
// worth writing: a clean profile used within the last second. It keeps a
// busy gateway from rewriting state on every request.
func successIsNoop(u store.UsageStats, now time.Time) bool {
	return u.CooldownUntil == 0 && u.DisabledUntil == 0 && u.ErrorCount == 0 &&
		len(u.FailureCounts) == 0 && now.UnixMilli()-u.LastUsed < 1000
}

// Recovery is when a profile may serve model again; zero means now.
// A disabled-until-changed profile reports DisabledUntilChanged.
func Recovery(u store.UsageStats, model string, now time.Time) int64 {
	ms := now.UnixMilli()
	var at int64
	if u.DisabledUntil > ms {
		at = u.DisabledUntil
	}
	if u.CooldownUntil > ms && (u.CooldownModel == "" || model == "" || u.CooldownModel == model) {
		at = max(at, u.CooldownUntil)
	}
	return at
}
