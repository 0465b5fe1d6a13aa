package keep_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/keep"
	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/gateway/store"
)

// A provider that echoes the refresh token in its error: the stored
// refreshError and the returned error never carry it.
func TestRefreshErrorNeverHoldsTheToken(t *testing.T) {
	const refresh = "rt-SECRET-echoed-0123456789"
	tokenURL := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"refresh token `+r.PostForm.Get("refresh_token")+` is revoked"}`)
	}))
	defer tokenURL.Close()
	st := store.New(t.TempDir())
	c := store.Credential{Type: store.TypeOAuth, Provider: "acme", Access: "at-SECRET", Refresh: refresh, Expires: time.Now().Add(time.Minute).UnixMilli()}
	st.UpdateProfiles("main", func(p *store.Profiles) error { p.Profiles["acme:me"] = c; return nil })
	r := &keep.Refresher{Store: st, Client: func(string) (oauth.Client, bool) {
		return oauth.Client{ClientID: "x", TokenURL: tokenURL.URL}, true
	}}
	_, err := r.Fresh(context.Background(), "main", "acme:me", c, false)
	p, _ := st.LoadProfiles("main")
	stored := p.Profiles["acme:me"].RefreshError
	if err == nil || stored == "" || !strings.Contains(stored, "invalid_grant") {
		t.Fatalf("err %v, refreshError %q: want the refusal recorded", err, stored)
	}
	if strings.Contains(stored, refresh) || strings.Contains(err.Error(), refresh) {
		t.Fatalf("the refresh token leaked into %q", stored)
	}
}
