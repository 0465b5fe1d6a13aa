// Package keep keeps the OAuth logins OpenSoul stores usable, for every
// process on the host: it refreshes a login before it expires, spending
// each refresh token once under the lock of the file that stores it
// (Refresher); it reads and writes back the logins shared with a
// provider's own CLI (ReadExternal, WriteExternal); and it caches the
// OAuth client each provider's module declares (Declared).
//
// It sits between gateway/oauth (the wire protocol: sign-in flows and
// token endpoints, no state) and gateway/store (the state files): the
// gateway and the CLI's commands both keep logins through it.
package keep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/gateway/store"
)

// DefaultRefreshSkew is how long before its expiry an OAuth login is
// refreshed.
const DefaultRefreshSkew = 5 * time.Minute

// Refresher keeps OAuth logins fresh for every process on the host.
//
// Each refresh token is spent at most once: a refresh happens while
// holding the lock of the auth-profiles.json that stores the login, after
// re-reading it. A process that finds the stored access token changed
// since it read its copy uses that refresh instead of making its own, so
// eight CLI processes and two gateways that need a refresh at the same
// moment cause one refresh grant, and all of them end with its token.
// Another process's writes wait for the lock while a refresh is in flight
// (bounded by Timeout).
//
// A refresh the provider refuses (invalid_grant, a revoked or reused
// token) marks the profile: RefreshError holds the provider's answer and
// the command that fixes it, its status becomes expired, and the policy
// skips it. A failure to reach the provider marks nothing and is retried
// at the next use.
type Refresher struct {
	Store *store.Store
	// Client returns the OAuth client for a provider (its module's info
	// with providers.<p>.oauth laid over it); false when none is known.
	Client func(provider string) (oauth.Client, bool)
	// Skew is how long before expiry a login is refreshed
	// (DefaultRefreshSkew when zero).
	Skew time.Duration
	// SkewOf, when set, is asked instead of Skew (a live config value).
	SkewOf func() time.Duration
	// Timeout bounds one refresh (30s when zero).
	Timeout    time.Duration
	HTTPClient *http.Client
	Now        func() time.Time
	Log        *slog.Logger
	// OnRefresh, when set, is told of each refresh this process makes
	// (result "ok", "dead" or "error"), for metrics.
	OnRefresh func(provider, result string)

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	dead  sync.Map // owner/id → the refresh token the provider refused
	ext   sync.Map // owner/id → extSeen: the source file as last read
}

// extSeen is an external login's source file as last read: its stat
// signature and the tokens it held.
type extSeen struct {
	sig             string
	access, refresh string
	expires         int64
}

// RefreshError is a login whose refresh failed. Dead means the provider
// refused it and the profile is now marked expired.
type RefreshError struct {
	Profile string
	Msg     string
	Dead    bool
}

func (e *RefreshError) Error() string { return e.Profile + ": " + e.Msg }

func (r *Refresher) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Refresher) skew() time.Duration {
	if r.SkewOf != nil {
		if d := r.SkewOf(); d > 0 {
			return d
		}
	}
	if r.Skew > 0 {
		return r.Skew
	}
	return DefaultRefreshSkew
}

// Due reports whether c should be refreshed before it is used.
func (r *Refresher) Due(c store.Credential) bool {
	return c.Refreshable() && c.Expires != 0 && time.UnixMilli(c.Expires).Sub(r.now()) <= r.skew()
}

func (r *Refresher) lock(key string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.locks == nil {
		r.locks = map[string]*sync.Mutex{}
	}
	m := r.locks[key]
	if m == nil {
		m = &sync.Mutex{}
		r.locks[key] = m
	}
	return m
}

// Fresh returns the credential to use for profile id stored by agent
// owner, given the copy c the caller read. When c is due for a refresh,
// or force is set (an upstream refused c's access token), it re-reads the
// profile under its file lock and either uses a newer login another
// process stored or refreshes once. Credentials that are not OAuth logins
// are returned as they are.
func (r *Refresher) Fresh(ctx context.Context, owner, id string, c store.Credential, force bool) (store.Credential, error) {
	if c.Type != store.TypeOAuth {
		return c, nil
	}
	if c.External != nil {
		if got, err := r.followExternal(owner, id, c); err != nil {
			r.logWarn("cannot read the login's source file; using the stored copy", id, err)
		} else {
			c = got
		}
	}
	if c.RefreshError != "" {
		return c, &RefreshError{Profile: id, Msg: c.RefreshError, Dead: true}
	}
	key := owner + "/" + id
	if bad, ok := r.dead.Load(key); ok && bad == c.Refresh {
		return c, &RefreshError{Profile: id, Msg: "the provider refused this login's refresh token; sign in again", Dead: true}
	}
	if !c.Refreshable() || (!force && !r.Due(c)) {
		return c, nil
	}
	m := r.lock(key)
	m.Lock()
	defer m.Unlock()

	var out store.Credential
	var rerr error
	err := r.Store.UpdateProfiles(owner, func(p *store.Profiles) error {
		cur, ok := p.Profiles[id]
		out = cur
		switch {
		case !ok || cur.Type != store.TypeOAuth:
			rerr = &RefreshError{Profile: id, Msg: "the profile was removed"}
			return store.NoChange
		case cur.RefreshError != "":
			rerr = &RefreshError{Profile: id, Msg: cur.RefreshError, Dead: true}
			return store.NoChange
		case cur.Access != c.Access && (cur.Expires == 0 || cur.Expires > r.now().UnixMilli()):
			// Another process (or goroutine) refreshed since c was read:
			// use its token rather than spend the refresh token again.
			return store.NoChange
		case cur.Refresh == "":
			return store.NoChange
		}
		if cur.External != nil {
			// Never spend a refresh token older than the source file's:
			// if the provider's CLI rotated the lineage, take its tokens.
			src, err := ReadExternal(cur.External.Source, cur.External.Path)
			if err == nil && src.Refresh != cur.Refresh {
				out = adopt(cur, src)
				p.Profiles[id] = out
				return nil
			}
		}
		next, err := r.refresh(ctx, id, cur)
		out = next
		if err != nil {
			rerr = err
			if !next.Refreshable() {
				p.Profiles[id] = next // mark it expired for every process
				return nil
			}
			return store.NoChange
		}
		p.Profiles[id] = next
		if x := next.External; x != nil && x.WriteBack {
			if err := WriteExternal(x.Source, x.Path, next); err != nil {
				r.logWarn("refreshed, but could not write the new tokens back to the source file; its CLI will need a new login", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("refresh %s: %w", id, err)
	}
	var re *RefreshError
	if errors.As(rerr, &re) && re.Dead {
		r.dead.Store(key, c.Refresh)
	}
	return out, rerr
}

// followExternal returns c with the tokens its source file holds now. The
// file is read again only when its size or modification time changed;
// a changed file's tokens are stored in the profile under its lock.
func (r *Refresher) followExternal(owner, id string, c store.Credential) (store.Credential, error) {
	x := c.External
	fi, err := os.Stat(x.Path)
	if err != nil {
		return c, err
	}
	key := owner + "/" + id
	sig := fmt.Sprint(fi.ModTime().UnixNano(), "/", fi.Size())
	if v, ok := r.ext.Load(key); ok && v.(extSeen).sig == sig {
		seen := v.(extSeen)
		c.Access, c.Refresh, c.Expires = seen.access, seen.refresh, seen.expires
		return c, nil
	}
	src, err := ReadExternal(x.Source, x.Path)
	if err != nil {
		return c, err
	}
	out := adopt(c, src)
	if src.Access != c.Access || src.Refresh != c.Refresh {
		err = r.Store.UpdateProfiles(owner, func(p *store.Profiles) error {
			cur, ok := p.Profiles[id]
			if !ok || cur.External == nil {
				return store.NoChange
			}
			out = adopt(cur, src)
			p.Profiles[id] = out
			return nil
		})
		if err != nil {
			return c, err
		}
		if r.Log != nil {
			r.Log.Info("oauth login taken from its source file", "profile", id, "source", x.Source)
		}
	}
	r.ext.Store(key, extSeen{sig: sig, access: out.Access, refresh: out.Refresh, expires: out.Expires})
	return out, nil
}

// adopt gives cur the tokens (and what else it knows) of src, a read of
// the login's source file. A refused refresh is forgotten: the file holds
// a new lineage.
func adopt(cur, src store.Credential) store.Credential {
	if src.Refresh != cur.Refresh || src.Access != cur.Access {
		cur.RefreshError = ""
	}
	cur.Access, cur.Refresh, cur.Expires = src.Access, src.Refresh, src.Expires
	if src.AccountID != "" {
		cur.AccountID = src.AccountID
	}
	if src.Email != "" {
		cur.Email = src.Email
	}
	return cur
}

func (r *Refresher) logWarn(msg, id string, err error) {
	if r.Log != nil {
		r.Log.Warn(msg, "profile", id, "error", err)
	}
}

// refresh spends cur's refresh token once. On a refusal the returned
// credential carries RefreshError.
func (r *Refresher) refresh(ctx context.Context, id string, cur store.Credential) (store.Credential, error) {
	client, ok := oauth.Client{}, false
	if r.Client != nil {
		client, ok = r.Client(cur.Provider)
	}
	fix := "opensoul models auth login --provider " + cur.Provider
	if !ok {
		cur.RefreshError = fmt.Sprintf("no OAuth client is known for provider %s, so the login cannot be refreshed; set providers.%s.oauth in opensoul.yaml, or sign in again: %s", cur.Provider, cur.Provider, fix)
		r.report(cur.Provider, "dead", id, cur.RefreshError)
		return cur, &RefreshError{Profile: id, Msg: cur.RefreshError, Dead: true}
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	tok, err := client.Refresh(ctx, r.HTTPClient, cur.Refresh)
	if err != nil {
		// The provider's words are stored and shown: make sure they never
		// carry the tokens back, whatever the provider echoes.
		text := strings.NewReplacer(cur.Refresh, "[refresh token]", cur.Access, "[access token]").Replace(err.Error())
		var oe *oauth.Error
		if errors.As(err, &oe) && oe.Dead() {
			cur.RefreshError = fmt.Sprintf("refresh refused: %s; sign in again: %s", text, fix)
			r.report(cur.Provider, "dead", id, cur.RefreshError)
			return cur, &RefreshError{Profile: id, Msg: cur.RefreshError, Dead: true}
		}
		r.report(cur.Provider, "error", id, text)
		return cur, &RefreshError{Profile: id, Msg: "refresh failed (will retry): " + text}
	}
	cur.Access = tok.Access
	if tok.Refresh != "" {
		cur.Refresh = tok.Refresh
	}
	cur.Expires = 0
	if !tok.Expires.IsZero() {
		cur.Expires = tok.Expires.UnixMilli()
	}
	if tok.AccountID != "" {
		cur.AccountID = tok.AccountID
	}
	if cur.Email == "" {
		cur.Email = tok.Email
	}
	r.report(cur.Provider, "ok", id, "")
	return cur, nil
}

func (r *Refresher) report(provider, result, id, msg string) {
	if r.OnRefresh != nil {
		r.OnRefresh(provider, result)
	}
	if r.Log == nil {
		return
	}
	switch result {
	case "ok":
		r.Log.Info("oauth login refreshed", "profile", id)
	case "dead":
		r.Log.Warn("oauth login expired: refresh refused", "profile", id, "error", msg)
	default:
		r.Log.Warn("oauth refresh failed; will retry", "profile", id, "error", msg)
	}
}
