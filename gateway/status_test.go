package gateway

import (
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

func TestProfileAndModuleStatus(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1764032400000)
	at := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	key := store.Credential{Type: store.TypeAPIKey, Key: "k"}
	cases := []struct {
		name     string
		c        store.Credential
		shape    string // ProfileStatus
		valid    string // ModuleStatus when the module accepts it
		rejected string // ModuleStatus when the module rejects it
	}{
		{"api key", key, StatusStatic, StatusStatic, StatusInvalid},
		{"token without expiry", store.Credential{Type: store.TypeToken, Token: "t"}, StatusStatic, StatusStatic, StatusInvalid},
		{"token with time left", store.Credential{Type: store.TypeToken, Token: "t", Expires: at(72 * time.Hour)}, StatusOK, StatusOK, StatusInvalid},
		{"token expiring soon", store.Credential{Type: store.TypeToken, Token: "t", Expires: at(time.Hour)}, StatusExpiring, StatusExpiring, StatusInvalid},
		{"token expired", store.Credential{Type: store.TypeToken, Token: "t", Expires: at(-time.Minute)}, StatusExpired, StatusExpired, StatusExpired},
		{"oauth past expiry with a refresh token", store.Credential{Type: store.TypeOAuth, Access: "a", Refresh: "r", Expires: at(-time.Minute)}, StatusExpiring, StatusExpiring, StatusInvalid},
		{"no secret", store.Credential{Type: store.TypeToken}, StatusMissing, StatusMissing, StatusInvalid},
	}
	for _, tc := range cases {
		if got := ProfileStatus(tc.c, now); got != tc.shape {
			t.Errorf("%s: ProfileStatus = %q, want %q", tc.name, got, tc.shape)
		}
		if got := ModuleStatus(tc.c, now, true); got != tc.valid {
			t.Errorf("%s: ModuleStatus(valid) = %q, want %q", tc.name, got, tc.valid)
		}
		if got := ModuleStatus(tc.c, now, false); got != tc.rejected {
			t.Errorf("%s: ModuleStatus(rejected) = %q, want %q", tc.name, got, tc.rejected)
		}
	}
}
