package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/oauth"
)

// loginRefreshWindow is how soon an OAuth login must expire for doctor
// --fix to offer a refresh (or the refresh skew, when that is longer).
const loginRefreshWindow = 24 * time.Hour

// loginRepairs offers to refresh the agent's OAuth logins that expire
// within the refresh skew or 24 h (or already have) and can be refreshed:
// through the gateway's refresh-once path (gateway.Refresher: under the
// profile file's lock, after re-reading it, using a refresh another
// process already made). A login whose refresh the provider refused needs
// a new sign-in instead, which doctor's checks say.
func (a *app) loginRepairs(agent string) ([]repair, error) {
	p, err := a.st.LoadProfiles(agent)
	if err != nil {
		return nil, err
	}
	now := a.now()
	window := max(loginRefreshWindow, ms(a.cfg.Auth.RefreshSkewMs))
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
			What: fmt.Sprintf("refresh the OAuth login %s (%s) with its refresh token, once, under %s's lock", id, when, a.st.ProfilesPath(agent)),
			Path: a.st.ProfilesPath(agent),
			apply: func() error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				fresh, err := a.loginRefresher(ctx).Fresh(ctx, agent, id, c, true)
				if err != nil {
					return err
				}
				if fresh.Expires != 0 {
					fmt.Fprintf(a.stdout, "  %s now expires %s\n", id, time.UnixMilli(fresh.Expires).UTC().Format(time.RFC3339))
				}
				return nil
			},
		})
	}
	return out, nil
}

// loginRefresher refreshes logins as the gateway does, with the OAuth
// clients modules declare and config overrides.
func (a *app) loginRefresher(ctx context.Context) *gateway.Refresher {
	reg, _, _ := a.registry(ctx)
	return &gateway.Refresher{
		Store: a.st, Skew: ms(a.cfg.Auth.RefreshSkewMs), Now: a.now,
		Client: func(provider string) (oauth.Client, bool) {
			c, ok := a.cfg.OAuthClients(a.moduleOAuth(ctx, reg, provider))[provider]
			return c, ok
		},
	}
}
