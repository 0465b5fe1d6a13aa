package doctor

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/opensoul/opensoul/gateway"
)

// loginRefreshWindow is how soon an OAuth login must expire for doctor
// --fix to offer a refresh (or the refresh skew, when that is longer).
const loginRefreshWindow = 24 * time.Hour

// loginRepairs offers to refresh the agent's OAuth logins that expire
// within the refresh skew or 24 h (or already have) and can be refreshed:
// through the gateway's refresh-once path (keep.Refresher: under the
// profile file's lock, after re-reading it, using a refresh another
// process already made). A login whose refresh the provider refused needs
// a new sign-in instead, which doctor's checks say.
func (s *Setup) loginRepairs(agent string) ([]repair, error) {
	p, err := s.Store.LoadProfiles(agent)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	window := max(loginRefreshWindow, s.RefreshSkew)
	var out []repair
	for _, id := range slices.Sorted(maps.Keys(p.Profiles)) {
		c := p.Profiles[id]
		if !c.Refreshable() || c.Expires == 0 {
			continue
		}
		left := time.UnixMilli(c.Expires).Sub(now)
		if left > window {
			continue
		}
		when := "expired " + gateway.Human(left) + " ago"
		if left > 0 {
			when = "expires in " + gateway.Human(left)
		}
		out = append(out, repair{
			What: fmt.Sprintf("refresh the OAuth login %s (%s) with its refresh token, once, under %s's lock", id, when, s.Store.ProfilesPath(agent)),
			Path: s.Store.ProfilesPath(agent),
			apply: func() error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				fresh, err := s.Refresher(ctx).Fresh(ctx, agent, id, c, true)
				if err != nil {
					return err
				}
				if fresh.Expires != 0 {
					fmt.Fprintf(s.Stdout, "  %s now expires %s\n", id, time.UnixMilli(fresh.Expires).UTC().Format(time.RFC3339))
				}
				return nil
			},
		})
	}
	return out, nil
}
