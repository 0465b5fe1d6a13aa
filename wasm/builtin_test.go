package wasm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func fill(prefix string, n int) string {
	const alphabet = "Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj-Cc1"
	var b strings.Builder
	b.WriteString(prefix)
	for i := 0; b.Len() < n; i++ {
		b.WriteByte(alphabet[i%len(alphabet)])
	}
	return b.String()
}

// Fixture secrets, shaped like the real ones; the tests scan output for them.
var (
	anthropicKey   = fill("sk-ant-api03-", 108)
	setupToken     = fill("sk-ant-oat01-", 106) + "AA"
	truncatedToken = setupToken[:80]
	openaiProjKey  = fill("sk-proj-", 164)
	openaiLegacy   = fill("sk-", 51)
	openrouterKey  = "sk-or-v1-" + strings.Repeat("0123456789abcdef", 4)
	googleKey      = fill("AIzaSy", 39)
)

func jwt(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString([]byte("signature"))
}

func i64(v int64) *int64 { return &v }

func TestBuiltinCheck(t *testing.T) {
	t.Parallel()
	r := builtins(t)
	const now = 1_800_000_000_000
	accessToken := jwt(`{"sub":"user-1","exp":1900000000}`)
	expiredToken := jwt(`{"exp":1700000000}`)
	tests := []struct {
		name, provider string
		req            CheckRequest
		valid          bool
		kind           string
		reason         string // substring of the reason
		expiresAt      *int64
	}{
		{"anthropic api key", "anthropic", CheckRequest{Type: "api_key", Secret: anthropicKey}, true, KindAPIKey, "", nil},
		{"anthropic setup token", "anthropic", CheckRequest{Type: "token", Secret: setupToken, Now: now}, true, KindSetupToken, "", nil},
		{"anthropic setup token, type unknown", "anthropic", CheckRequest{Secret: setupToken}, true, KindSetupToken, "", nil},
		{"anthropic oauth access", "anthropic", CheckRequest{Type: "oauth", Secret: setupToken, ExpiresAt: i64(now + 1000), Now: now}, true, KindOAuthAccess, "", i64(now + 1000)},
		{"anthropic expired token", "anthropic", CheckRequest{Type: "token", Secret: setupToken, ExpiresAt: i64(now - 1), Now: now}, false, KindSetupToken, "expired", i64(now - 1)},
		{"anthropic truncated token", "anthropic", CheckRequest{Type: "token", Secret: truncatedToken}, false, KindSetupToken, "cut at a line wrap", nil},
		{"anthropic short key", "anthropic", CheckRequest{Type: "api_key", Secret: anthropicKey[:30]}, false, KindAPIKey, "too short", nil},
		{"anthropic refresh token", "anthropic", CheckRequest{Secret: fill("sk-ant-ort01-", 108)}, false, KindUnknown, "refresh token", nil},
		{"anthropic given an openai key", "anthropic", CheckRequest{Type: "api_key", Secret: openaiProjKey}, false, KindUnknown, "OpenAI key, not an Anthropic", nil},
		{"anthropic given an openrouter key", "anthropic", CheckRequest{Type: "api_key", Secret: openrouterKey}, false, KindUnknown, "OpenRouter key", nil},
		{"anthropic given garbage", "anthropic", CheckRequest{Type: "api_key", Secret: "hello"}, false, KindUnknown, "not an Anthropic API key", nil},
		{"anthropic token with a line break", "anthropic", CheckRequest{Type: "token", Secret: setupToken[:60] + "\n" + setupToken[60:]}, false, KindSetupToken, "line break", nil},
		{"anthropic empty", "anthropic", CheckRequest{Type: "api_key"}, false, KindUnknown, "empty", nil},
		{"openai project key", "openai", CheckRequest{Type: "api_key", Secret: openaiProjKey}, true, KindAPIKey, "", nil},
		{"openai legacy key", "openai", CheckRequest{Type: "api_key", Secret: openaiLegacy}, true, KindAPIKey, "", nil},
		{"openai access token", "openai", CheckRequest{Type: "oauth", Secret: accessToken, Now: now}, true, KindOAuthAccess, "", i64(1_900_000_000_000)},
		{"openai expired access token", "openai", CheckRequest{Type: "oauth", Secret: expiredToken, Now: now}, false, KindOAuthAccess, "expired", i64(1_700_000_000_000)},
		{"openai given an anthropic key", "openai", CheckRequest{Type: "api_key", Secret: anthropicKey}, false, KindUnknown, "Anthropic key", nil},
		{"openai short key", "openai", CheckRequest{Type: "api_key", Secret: "sk-abc"}, false, KindAPIKey, "too short", nil},
		{"openai admin key", "openai", CheckRequest{Type: "api_key", Secret: fill("sk-admin-", 80)}, false, KindAPIKey, "admin key", nil},
		{"openrouter key", "openrouter", CheckRequest{Type: "api_key", Secret: openrouterKey}, true, KindAPIKey, "", nil},
		{"openrouter given an openai key", "openrouter", CheckRequest{Type: "api_key", Secret: openaiLegacy}, false, KindUnknown, "OpenAI key", nil},
		{"google key", "google", CheckRequest{Type: "api_key", Secret: googleKey}, true, KindAPIKey, "", nil},
		{"google short key", "google", CheckRequest{Type: "api_key", Secret: googleKey[:30]}, false, KindAPIKey, "39 characters", nil},
		{"google given an anthropic key", "google", CheckRequest{Type: "api_key", Secret: anthropicKey}, false, KindUnknown, "Anthropic key", nil},
		{"anthropic given a google key", "anthropic", CheckRequest{Type: "api_key", Secret: googleKey}, false, KindUnknown, "Google key", nil},
		{"openrouter short key", "openrouter", CheckRequest{Type: "api_key", Secret: "sk-or-v1-abc"}, false, KindAPIKey, "too short", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := r.Check(context.Background(), tt.provider, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got.Valid != tt.valid || got.Kind != tt.kind || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("got %+v, want valid=%v kind=%s reason~%q", got, tt.valid, tt.kind, tt.reason)
			}
			if tt.valid && got.Reason != "" {
				t.Errorf("valid verdict with a reason: %q", got.Reason)
			}
			if (got.ExpiresAt == nil) != (tt.expiresAt == nil) || got.ExpiresAt != nil && *got.ExpiresAt != *tt.expiresAt {
				t.Errorf("expiresAt = %v, want %v", deref(got.ExpiresAt), deref(tt.expiresAt))
			}
			if strings.Contains(got.Reason+got.Hint, tt.req.Secret) && tt.req.Secret != "" {
				t.Error("the verdict repeats the secret")
			}
		})
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestBuiltinHeaders(t *testing.T) {
	t.Parallel()
	r := builtins(t)
	tests := []struct {
		name, provider string
		req            HeadersRequest
		set            map[string]string
		remove         []string
	}{
		{"anthropic api key", "anthropic", HeadersRequest{Type: "api_key", Secret: anthropicKey},
			map[string]string{"x-api-key": anthropicKey}, []string{"authorization"}},
		{"anthropic setup token", "anthropic", HeadersRequest{Type: "token", Secret: setupToken},
			map[string]string{"authorization": "Bearer " + setupToken, "anthropic-beta": "oauth-2025-04-20"}, []string{"x-api-key"}},
		{"anthropic token stored as api_key", "anthropic", HeadersRequest{Type: "api_key", Secret: setupToken},
			map[string]string{"authorization": "Bearer " + setupToken, "anthropic-beta": "oauth-2025-04-20"}, []string{"x-api-key"}},
		{"openai", "openai", HeadersRequest{Type: "api_key", Secret: openaiProjKey},
			map[string]string{"authorization": "Bearer " + openaiProjKey}, []string{"x-api-key"}},
		{"openai chatgpt login", "openai", HeadersRequest{Type: "oauth", Secret: "eyJ.a.b", AccountID: "acct-9"},
			map[string]string{"authorization": "Bearer eyJ.a.b", "chatgpt-account-id": "acct-9"}, []string{"x-api-key"}},
		{"openai chatgpt login, another account", "openai", HeadersRequest{Type: "oauth", Secret: "eyJ.a.b", AccountID: "acct-10"},
			map[string]string{"authorization": "Bearer eyJ.a.b", "chatgpt-account-id": "acct-10"}, []string{"x-api-key"}},
		{"openrouter", "openrouter", HeadersRequest{Type: "api_key", Secret: openrouterKey},
			map[string]string{"authorization": "Bearer " + openrouterKey}, []string{"x-api-key"}},
		{"google api key", "google", HeadersRequest{Type: "api_key", Secret: googleKey},
			map[string]string{"x-goog-api-key": googleKey}, []string{"authorization", "x-api-key"}},
		{"google oauth", "google", HeadersRequest{Type: "oauth", Secret: "ya29.token"},
			map[string]string{"authorization": "Bearer ya29.token"}, []string{"x-goog-api-key", "x-api-key"}},
		{"generic provider", "mistral", HeadersRequest{Type: "api_key", Secret: "m-123"},
			map[string]string{"authorization": "Bearer m-123"}, []string{"x-api-key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := r.Headers(context.Background(), tt.provider, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if !equalMap(got.Set, tt.set) || strings.Join(got.Remove, ",") != strings.Join(tt.remove, ",") {
				t.Errorf("got set=%v remove=%v, want set=%v remove=%v", keys(got.Set), got.Remove, keys(tt.set), tt.remove)
			}
			// Only a ChatGPT-plan login moves to another upstream.
			wantBase := ""
			if tt.provider == "openai" && tt.req.Type == "oauth" {
				wantBase = "https://chatgpt.com/backend-api/codex"
			}
			if got.BaseURL != wantBase || (wantBase != "") != (got.StripPrefix == "/v1") {
				t.Errorf("baseUrl=%q stripPrefix=%q, want %q", got.BaseURL, got.StripPrefix, wantBase)
			}
		})
	}
}

func equalMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// keys lists header names only: values hold secrets.
func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestBuiltinClassify(t *testing.T) {
	t.Parallel()
	r := builtins(t)
	ra := func(s string) map[string]string { return map[string]string{"retry-after": s} }
	tests := []struct {
		name, provider string
		req            ClassifyRequest
		reason         string
		failover       bool
		retryAfterMs   *int64
		hint           string
	}{
		{"anthropic claude code only", "anthropic", ClassifyRequest{Status: 400, Body: `{"type":"error","error":{"type":"invalid_request_error","message":"This credential is only authorized for use with Claude Code and cannot be used for other API requests."}}`}, ReasonCredentialScope, true, nil, "API key"},
		{"anthropic 401", "anthropic", ClassifyRequest{Status: 401, Body: `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`}, ReasonAuth, true, nil, ""},
		{"anthropic 403", "anthropic", ClassifyRequest{Status: 403, Body: `{"type":"error","error":{"type":"permission_error"}}`}, ReasonAuth, true, nil, ""},
		{"anthropic 402", "anthropic", ClassifyRequest{Status: 402}, ReasonBilling, true, nil, ""},
		{"anthropic credit balance", "anthropic", ClassifyRequest{Status: 400, Body: `{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}`}, ReasonBilling, true, nil, "credits"},
		{"anthropic 429 retry-after", "anthropic", ClassifyRequest{Status: 429, Headers: ra("17"), Body: `{"type":"error","error":{"type":"rate_limit_error"}}`}, ReasonRateLimit, true, i64(17000), ""},
		{"anthropic 429 without retry-after", "anthropic", ClassifyRequest{Status: 429}, ReasonRateLimit, true, nil, ""},
		{"anthropic 529 overloaded", "anthropic", ClassifyRequest{Status: 529, Headers: ra("3"), Body: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`}, ReasonRateLimit, true, i64(3000), "overloaded"},
		{"anthropic 500", "anthropic", ClassifyRequest{Status: 500, Body: `{"type":"error","error":{"type":"api_error"}}`}, ReasonTimeout, true, nil, ""},
		{"anthropic 404 model", "anthropic", ClassifyRequest{Status: 404, Body: `{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}}`}, ReasonModelNotFound, false, nil, ""},
		{"anthropic 400", "anthropic", ClassifyRequest{Status: 400, Body: `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: field required"}}`}, ReasonFormat, false, nil, ""},
		{"openai insufficient_quota", "openai", ClassifyRequest{Status: 429, Body: `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`}, ReasonBilling, true, nil, "quota"},
		{"openai 429", "openai", ClassifyRequest{Status: 429, Headers: ra("2"), Body: `{"error":{"type":"requests","code":"rate_limit_exceeded"}}`}, ReasonRateLimit, true, i64(2000), ""},
		{"openai 401", "openai", ClassifyRequest{Status: 401, Body: `{"error":{"code":"invalid_api_key"}}`}, ReasonAuth, true, nil, "invalid_api_key"},
		{"openai 404 model", "openai", ClassifyRequest{Status: 404, Body: `{"error":{"code":"model_not_found"}}`}, ReasonModelNotFound, false, nil, ""},
		{"openai 503", "openai", ClassifyRequest{Status: 503}, ReasonTimeout, true, nil, ""},
		{"openrouter 402", "openrouter", ClassifyRequest{Status: 402, Body: `{"error":{"code":402,"message":"Insufficient credits"}}`}, ReasonBilling, true, nil, "credits"},
		{"openrouter key limit 403", "openrouter", ClassifyRequest{Status: 403, Body: `{"error":{"code":403,"message":"Key limit exceeded"}}`}, ReasonBilling, true, nil, "credit limit"},
		{"openrouter moderation 403", "openrouter", ClassifyRequest{Status: 403, Body: `{"error":{"code":403,"message":"Input was flagged by moderation"}}`}, ReasonFormat, false, nil, ""},
		{"openrouter 401", "openrouter", ClassifyRequest{Status: 401}, ReasonAuth, true, nil, ""},
		{"openrouter 429", "openrouter", ClassifyRequest{Status: 429, Headers: ra("1")}, ReasonRateLimit, true, i64(1000), ""},
		{"google bad key", "google", ClassifyRequest{Status: 400, Body: `{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}`}, ReasonAuth, true, nil, "rejected"},
		{"google exhausted", "google", ClassifyRequest{Status: 429, Headers: ra("5"), Body: `{"error":{"status":"RESOURCE_EXHAUSTED"}}`}, ReasonRateLimit, true, i64(5000), ""},
		{"google 400", "google", ClassifyRequest{Status: 400, Body: `{"error":{"status":"INVALID_ARGUMENT","message":"bad contents"}}`}, ReasonFormat, false, nil, ""},
		{"generic 529", "mistral", ClassifyRequest{Status: 529}, ReasonTimeout, true, nil, ""},
		{"generic 429", "mistral", ClassifyRequest{Status: 429, Headers: map[string]string{"retry-after-ms": "250"}}, ReasonRateLimit, true, i64(250), ""},
		{"generic credit balance", "mistral", ClassifyRequest{Status: 400, Body: "credit balance too low"}, ReasonBilling, true, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := r.Classify(context.Background(), tt.provider, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if wantScope := map[bool]string{true: "claude-code"}[tt.reason == ReasonCredentialScope]; got.Scope != wantScope {
				t.Errorf("scope %q, want %q", got.Scope, wantScope)
			}
			if got.Reason != tt.reason || got.Failover != tt.failover || !strings.Contains(got.Hint, tt.hint) {
				t.Errorf("got %+v, want reason=%s failover=%v hint~%q", got, tt.reason, tt.failover, tt.hint)
			}
			if deref(got.RetryAfterMs) != deref(tt.retryAfterMs) {
				t.Errorf("retryAfterMs = %v, want %v", deref(got.RetryAfterMs), deref(tt.retryAfterMs))
			}
		})
	}
}

func TestBuiltinInfo(t *testing.T) {
	t.Parallel()
	r := builtins(t)
	got := r.Providers(context.Background())
	if len(got) != 4 {
		t.Fatalf("got %d providers, want the 4 built-ins: %+v", len(got), got)
	}
	for _, p := range got {
		ops := "info,check,headers,classify,observe"
		if p.Name == "google" {
			ops = "info,check,headers,classify"
		}
		if p.Source != "builtin" || p.ABIVersion != 1 || p.Version == "" || p.Error != "" ||
			strings.Join(p.Ops, ",") != ops {
			t.Errorf("%+v", p)
		}
	}
}

// The hot path: a credential seen once costs no module call.
func TestResultsCachedPerCredential(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(t, Options{})
	r, _ := NewRegistry(context.Background(), h, nil)
	ctx := context.Background()
	// A fresh key per run: verdicts also persist in the shared cache dir.
	key := fill("sk-ant-api03-cachetest"+strconv.FormatInt(time.Now().UnixNano(), 36), 108)
	for range 3 {
		if _, err := r.Headers(ctx, "anthropic", HeadersRequest{Type: "api_key", Secret: key}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Check(ctx, "anthropic", CheckRequest{Type: "api_key", Secret: key}); err != nil {
			t.Fatal(err)
		}
	}
	m := r.entry("anthropic").mod
	base := int64(1) // the load-time info call: the built-ins declare their ops
	if got := m.calls.Load() - base; got != 2 {
		t.Errorf("module calls = %d, want 2 (one check, one headers)", got)
	}
	// Another secret is another credential.
	if _, err := r.Headers(ctx, "anthropic", HeadersRequest{Type: "api_key", Secret: key + "x"}); err != nil {
		t.Fatal(err)
	}
	if got := m.calls.Load() - base; got != 3 {
		t.Errorf("module calls = %d, want 3", got)
	}
}

// A cached valid verdict is not served past the credential's expiry.
func TestCachedCheckExpires(t *testing.T) {
	t.Parallel()
	r := builtins(t)
	ctx := context.Background()
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36) // verdicts persist across runs
	req := CheckRequest{Type: "token", Secret: fill("sk-ant-oat01-expirytest"+nonce, 108), ExpiresAt: i64(2000), Now: 1000}
	if got, err := r.Check(ctx, "anthropic", req); err != nil || !got.Valid {
		t.Fatalf("before expiry: %+v %v", got, err)
	}
	req.Now = 3000
	if got, err := r.Check(ctx, "anthropic", req); err != nil || got.Valid {
		t.Fatalf("after expiry: %+v %v", got, err)
	}
}

func TestGenericProvider(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(t, Options{})
	r, errs := NewRegistry(context.Background(), h, map[string]string{"mistral": ""})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	ctx := context.Background()
	c, err := r.Check(ctx, "mistral", CheckRequest{Type: "api_key", Secret: "abc"})
	if err != nil || !c.Valid || c.Kind != KindAPIKey {
		t.Errorf("check: %+v %v", c, err)
	}
	c, err = r.Check(ctx, "mistral", CheckRequest{Type: "token", Secret: "abc", ExpiresAt: i64(5), Now: 10})
	if err != nil || c.Valid || !strings.Contains(c.Reason, "expired") {
		t.Errorf("expired check: %+v %v", c, err)
	}
	var found bool
	for _, p := range r.Providers(ctx) {
		if p.Name == "mistral" {
			found = p.Source == "generic" && p.ABIVersion == 0 && len(p.Ops) == 0
		}
	}
	if !found {
		t.Errorf("mistral not listed as generic: %+v", r.Providers(ctx))
	}
	if errs := r.Load(ctx, "unknown-provider"); len(errs) != 0 {
		t.Errorf("Load of an unknown provider: %v", errs)
	}
	_, err = r.Classify(ctx, "nobody", ClassifyRequest{Status: 401})
	if err != nil || errors.Is(err, ErrUnsupportedOp) {
		t.Error(err)
	}
}

// A verdict found in the cache dir answers without loading the module: a
// warm `models status` runs no WebAssembly at all.
func TestVerdictsPersistAcrossHosts(t *testing.T) {
	t.Parallel()
	builtins(t)
	dir := t.TempDir()
	copyCompiled(t, testCacheDir, dir) // a warm compile cache, but no verdicts yet
	ctx := context.Background()
	key := fill("sk-ant-api03-persisted", 108)
	reqs := []CheckRequest{
		{Type: "api_key", Secret: key},
		{Type: "api_key", Secret: openaiProjKey},
		{Type: "token", Secret: fill("sk-ant-oat01-persisted", 108), ExpiresAt: i64(5000), Now: 1000},
	}
	run := func() (*Registry, []CheckResult) {
		h, err := NewHost(ctx, Options{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close(ctx) })
		r, _ := NewRegistry(ctx, h, nil)
		var out []CheckResult
		for _, req := range reqs {
			c, err := r.Check(ctx, "anthropic", req)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		return r, out
	}
	first, want := run()
	if first.entry("anthropic").mod == nil {
		t.Fatal("the first run did not load the module")
	}
	second, got := run()
	if second.entry("anthropic").mod != nil {
		t.Error("the second run loaded the module; the verdicts were not reused")
	}
	for i := range want {
		if !sameVerdict(got[i], want[i]) {
			t.Errorf("verdict %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	// Past its expiry, a stored valid verdict is not served.
	late := reqs[2]
	late.Now = 6000
	if c, err := second.Check(ctx, "anthropic", late); err != nil || c.Valid {
		t.Errorf("after expiry: %+v %v", c, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, verdictFileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range reqs {
		if strings.Contains(string(b), req.Secret) || strings.Contains(string(b), req.Secret[20:60]) {
			t.Fatal("a secret was written to the verdict file")
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, verdictFileName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("verdict file mode %v, want 0600", fi.Mode().Perm())
	}
}

// copyCompiled copies wazero's compiled modules (not the verdicts) from one
// cache dir to another.
func copyCompiled(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == from || d.Name() == verdictFileName {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCheckAll(t *testing.T) {
	t.Parallel()
	r := builtins(t)
	got := r.CheckAll(context.Background(), []CheckCall{
		{"anthropic", CheckRequest{Type: "api_key", Secret: anthropicKey}},
		{"openai", CheckRequest{Type: "api_key", Secret: anthropicKey}},
		{"openrouter", CheckRequest{Type: "api_key", Secret: openrouterKey}},
		{"nobody", CheckRequest{Type: "api_key", Secret: "x"}},
	})
	want := []bool{true, false, true, true}
	for i, o := range got {
		if o.Err != nil || o.Result.Valid != want[i] {
			t.Errorf("call %d: %+v", i, o)
		}
	}
}

// The built-in openai module declares the Codex sign-in in its info answer
// (ABI 1 revision 2); the values are pinned here and, decoded as
// gateway/oauth.Client, in cli's login test.
func TestBuiltinOpenAIDeclaresItsOAuthClient(t *testing.T) {
	t.Parallel()
	r := builtins(t)
	var got map[string]any
	if err := json.Unmarshal(r.OAuth(context.Background(), "openai"), &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"authUrl": "https://auth.openai.com/oauth/authorize", "tokenUrl": "https://auth.openai.com/oauth/token",
		"clientId": "app_EMoamEEZ73f0CkXaXp7hrann", "redirectPort": float64(1455), "redirectPath": "/auth/callback",
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if _, ok := got["deviceUrl"]; ok {
		t.Error("deviceUrl declared: Codex's device sign-in is not RFC 8628")
	}
	if src, _ := got["source"].(string); !strings.Contains(src, "openai/codex") {
		t.Errorf("source = %q, want the Codex CLI named", src)
	}
	for _, p := range []string{"anthropic", "google", "openrouter"} {
		if raw := r.OAuth(context.Background(), p); raw != nil {
			t.Errorf("%s declares an OAuth client: %s", p, raw)
		}
	}
}
