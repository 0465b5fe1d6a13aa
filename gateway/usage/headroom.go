package usage

import (
	"fmt"
	"time"
)

// ProfileHeadroom is the tightest window a profile's provider last
// reported: what `opensoul usage`, `models status` and /model status show.
type ProfileHeadroom struct {
	Left    float64   `json:"left"` // share of the window left, 0..1
	Window  string    `json:"window"`
	Status  string    `json:"status,omitempty"`
	ResetAt time.Time `json:"resetAt,omitzero"`
	At      time.Time `json:"at"` // when the provider said so
}

// Owned keeps the limits of the credentials one agent uses: owner says,
// for a profile id, which agent's store holds the credential that agent
// uses under that id ("" for a key from the environment or the config).
// Another agent's own profile with the same id is another credential.
func Owned(limits []Limits, owner func(profile string) string) []Limits {
	out := limits[:0:0]
	for _, l := range limits {
		if l.Agent == owner(l.Profile) {
			out = append(out, l)
		}
	}
	return out
}

// Tightest is, per profile, the window with the least left across the
// profile's models; a rejected status counts as nothing left (window
// "all", reset when the rejection lifts). Profiles whose limits name no
// known headroom are absent.
func Tightest(limits []Limits) map[string]*ProfileHeadroom {
	out := map[string]*ProfileHeadroom{}
	for _, l := range limits {
		for _, w := range l.Windows {
			left := w.Headroom()
			if left < 0 {
				continue
			}
			if cur := out[l.Profile]; cur == nil || left < cur.Left {
				out[l.Profile] = &ProfileHeadroom{Left: left, Window: w.Name, Status: l.Status, ResetAt: w.ResetAt, At: l.Time}
			}
		}
		if l.Status == "rejected" {
			out[l.Profile] = &ProfileHeadroom{Left: 0, Window: "all", Status: l.Status, ResetAt: l.ResetAt, At: l.Time}
		}
	}
	return out
}

// Text is "62% tokens, resets in 1m30s" ("rejected" or "warning" after
// the window when the provider said so), or "-" when h is nil. A reset
// already past is not shown.
func (h *ProfileHeadroom) Text(now time.Time) string {
	if h == nil {
		return "-"
	}
	s := fmt.Sprintf("%.0f%% %s", 100*h.Left, h.Window)
	if h.Status == "rejected" || h.Status == "warning" {
		s += " " + h.Status
	}
	if !h.ResetAt.IsZero() && h.ResetAt.After(now) {
		s += ", resets in " + h.ResetAt.Sub(now).Round(time.Second).String()
	}
	return s
}
