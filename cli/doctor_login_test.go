package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/gateway/store"
)

// doctor --fix offers to refresh the logins that expire within 24 h (or
// have), shows it as a planned repair in the dry run, and with --yes
// refreshes each once through the refresh-once path, against a real
// authorization server.
func TestDoctorFixRefreshesExpiringLogins(t *testing.T) {
	t.Parallel()
	e, as := loginEnv(t)
	soon, expired, later, dead := as.Login(t), as.Login(t), as.Login(t), as.Login(t)
	now := time.Now()
	login := func(tok oauth.Token, exp time.Time) store.Credential {
		return store.Credential{Type: store.TypeOAuth, Provider: "acme", Access: tok.Access, Refresh: tok.Refresh, Expires: exp.UnixMilli()}
	}
	err := store.New(e.state).UpdateProfiles("main", func(p *store.Profiles) error {
		p.Profiles["acme:soon"] = login(soon, now.Add(2*time.Hour))
		p.Profiles["acme:expired"] = login(expired, now.Add(-time.Hour))
		p.Profiles["acme:later"] = login(later, now.Add(72*time.Hour))
		d := login(dead, now.Add(time.Hour))
		d.RefreshError = "refresh refused: invalid_grant; sign in again: opensoul models auth login --provider acme"
		p.Profiles["acme:dead"] = d
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code := e.run("", "doctor", "--fix")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"repair: refresh the OAuth login acme:soon (expires in 2h)", "repair: refresh the OAuth login acme:expired (expired 1h ago)", "Dry run: nothing changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "acme:later") || strings.Contains(out, "acme:dead") {
		t.Errorf("dry run offers a login that is not expiring or cannot be refreshed:\n%s", out)
	}
	if as.RefreshAttempts() != 0 || e.login("acme:soon").Access != soon.Access {
		t.Fatal("the dry run refreshed a login")
	}

	out, errs, code = e.run("", "doctor", "--fix", "--yes")
	if code != 0 {
		t.Fatalf("--yes: exit %d\n%s\n%s", code, out, errs)
	}
	if as.RefreshGrants() != 2 || as.Reuses() != 0 {
		t.Errorf("refresh grants %d (want 2), reuses %d", as.RefreshGrants(), as.Reuses())
	}
	for id, old := range map[string]oauth.Token{"acme:soon": soon, "acme:expired": expired} {
		c := e.login(id)
		if c.Access == old.Access || c.Refresh == old.Refresh || !as.Valid(c.Access) || c.Expires <= now.UnixMilli() {
			t.Errorf("%s was not refreshed and stored", id)
		}
		if !strings.Contains(out, "done: refresh the OAuth login "+id) || strings.Contains(out+errs, c.Access) || strings.Contains(out+errs, c.Refresh) {
			t.Errorf("%s: output does not say done, or prints a token:\n%s", id, out)
		}
	}
	if e.login("acme:later").Access != later.Access || e.login("acme:dead").Access != dead.Access {
		t.Error("a login that was not offered changed")
	}
	// The test server's tokens last 5 minutes, so both are offered again;
	// a second run spends the stored, rotated refresh tokens: no reuse.
	if _, errs, code := e.run("", "doctor", "--fix", "--yes"); code != 0 || as.RefreshGrants() != 4 || as.Reuses() != 0 {
		t.Errorf("second run: exit %d, grants %d (want 4), reuses %d\n%s", code, as.RefreshGrants(), as.Reuses(), errs)
	}
}
