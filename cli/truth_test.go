package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/cli/doctor"
	"github.com/opensoul/opensoul/gateway/store"
)

// TestOneTruth builds a state where the built-in type order, the config
// order, a user policy, a cooldown for one model and a billing disable
// all point at different profiles, and checks that the gateway's
// X-Opensoul-Profile, models status (text and --json), /model status,
// order get, doctor and policy explain name the same credential for each
// model:
//
//   - type order would pick anthropic:oauth (OAuth first);
//   - config auth.order starts with anthropic:billing, disabled (billing);
//   - then anthropic:cool, cooling for claude-sonnet-5 only;
//   - then anthropic:work; a user policy denies anthropic:oauth.
//
// So claude-opus-5 (the default model) is served by anthropic:cool and
// claude-sonnet-5 (the model with the recorded cooldown) by anthropic:work.
func TestOneTruth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	up := fakeAnthropic(t, nil)
	now := time.Now().UnixMilli()
	tok := func(tag string) string { return strings.Replace(fixSetupToken, "FIXTURE", "FIXTURE"+tag, 1) }
	profiles, _ := json.Marshal(store.Profiles{Version: 1, Profiles: map[string]store.Credential{
		"anthropic:oauth":   {Type: store.TypeOAuth, Provider: "anthropic", Access: tok("oauth"), Expires: now + 72*3600_000},
		"anthropic:billing": {Type: store.TypeToken, Provider: "anthropic", Token: tok("billing")},
		"anthropic:cool":    {Type: store.TypeToken, Provider: "anthropic", Token: tok("cool")},
		"anthropic:work":    {Type: store.TypeToken, Provider: "anthropic", Token: tok("work")},
	}})
	e.writeFile("agents/main/agent/auth-profiles.json", string(profiles))
	state, _ := json.Marshal(store.State{Version: 1, LastGood: map[string]string{}, UsageStats: map[string]*store.UsageStats{
		"anthropic:billing": {DisabledUntil: now + 5*3600_000, DisabledReason: "billing", ErrorCount: 1},
		"anthropic:cool":    {CooldownUntil: now + 30*60_000, CooldownModel: "claude-sonnet-5", ErrorCount: 1},
	}})
	e.writeFile("agents/main/agent/auth-state.json", string(state))
	e.writeFile("policies/personal.rego", `package opensoul.rules

deny contains {"profile": "anthropic:oauth", "reason": "personal account, not for this agent"}
`)
	e.writeFile(".env", envGatewayToken+"="+fixGatewayToken+"\n")
	e.writeFile("opensoul.yaml", `# the config order disagrees with the type order
providers:
  anthropic:
    baseUrl: `+up.URL+`
agents:
  defaults:
    model:
      primary: anthropic/claude-opus-5
auth:
  order:
    anthropic: [anthropic:billing, anthropic:cool, anthropic:work, anthropic:oauth]
`)
	want := map[string]string{"claude-sonnet-5": "anthropic:work", "claude-opus-5": "anthropic:cool"}

	// models status --json: the decision for the model in use and for the
	// model with a recorded cooldown.
	var rep statusReport
	if err := json.Unmarshal([]byte(e.ok("", "models", "status", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	for model, id := range want {
		var got string
		for _, m := range rep.Models {
			if m.Ref == "anthropic/"+model {
				got = m.Serving
			}
		}
		if got != id {
			t.Errorf("models status --json: %s served by %q, want %s", model, got, id)
		}
	}
	if len(rep.Providers) != 1 || rep.Providers[0].Effective.Serving != "anthropic:cool" {
		t.Errorf("models status --json providers: %+v", rep.Providers)
	}
	for _, r := range rep.Providers[0].Profiles {
		if r.Why == "" || r.Role == "" {
			t.Errorf("profile line without a role or reason: %+v", r)
		}
	}
	// models status, text.
	text := e.ok("", "models", "status")
	for _, s := range []string{"anthropic — anthropic:cool", "for anthropic/claude-sonnet-5: anthropic:work",
		"personal account, not for this agent", "cooldown 29m on claude-sonnet-5", "disabled: billing"} {
		if !strings.Contains(text, s) && !(strings.HasPrefix(s, "cooldown 29m") && strings.Contains(text, "cooldown 30m on claude-sonnet-5")) {
			t.Errorf("models status lacks %q:\n%s", s, text)
		}
	}
	// order get: the order in force, its source, and what serves.
	var ord orderReport
	if err := json.Unmarshal([]byte(e.ok("", "models", "auth", "order", "get", "--provider", "anthropic", "--json")), &ord); err != nil {
		t.Fatal(err)
	}
	if ord.Source != "config auth.order" || ord.Order[0] != "anthropic:billing" || ord.Serving != want["claude-opus-5"] {
		t.Errorf("order get: %+v", ord)
	}
	// policy explain, per model.
	for model, id := range want {
		var ex struct{ Serving string }
		if err := json.Unmarshal([]byte(e.ok("", "policy", "explain", "--provider", "anthropic", "--model", model, "--json")), &ex); err != nil {
			t.Fatal(err)
		}
		if ex.Serving != id {
			t.Errorf("policy explain --model %s: %q, want %s", model, ex.Serving, id)
		}
	}
	if out := e.ok("", "policy", "explain", "--provider", "anthropic"); !strings.Contains(out, "Serves anthropic/claude-opus-5: anthropic:cool") ||
		!strings.Contains(out, "Serves anthropic/claude-sonnet-5: anthropic:work") {
		t.Errorf("policy explain without --model:\n%s", out)
	}
	// doctor: the credential that serves, the cooldown with its model, the disable.
	var doc struct{ Checks []doctor.Check }
	out, _, _ := e.run("", "doctor", "--json")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	found := map[string]string{}
	for _, c := range doc.Checks {
		found[c.Name] = c.Status + " " + c.Detail
	}
	for name, s := range map[string]string{
		"credentials anthropic":      "ok anthropic:cool serves anthropic/claude-opus-5",
		"cooldown anthropic:cool":    "cooling for claude-sonnet-5",
		"disabled anthropic:billing": "warn disabled for every model: billing",
	} {
		if !strings.Contains(found[name], s) {
			t.Errorf("doctor %s: %q, want %q", name, found[name], s)
		}
	}

	// The gateway itself, then /model status through it: a new session
	// for each request, so no auto pin carries over between models. Sonnet
	// first: a success of anthropic:cool ends its cooldown for every model.
	g := startGateway(t, e, "127.0.0.1:0")
	for _, model := range []string{"claude-sonnet-5", "claude-opus-5"} {
		id := want[model]
		_, body := truthPost(t, g, "status-"+model, `{"model":"`+model+`","max_tokens":1,"messages":[{"role":"user","content":"/model status"}]}`)
		if !strings.Contains(body, "Credential: "+id+" (") {
			t.Errorf("/model status for %s does not name %s:\n%s", model, id, body)
		}
		resp, body := truthPost(t, g, "s-"+model, `{"model":"`+model+`","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 200 || resp.Header.Get("X-Opensoul-Profile") != id {
			t.Errorf("gateway %s: %d served by %q, want %s\n%s\n%s", model, resp.StatusCode, resp.Header.Get("X-Opensoul-Profile"), id, body, g.stderr.String())
		}
	}
	e.assertNoSecrets()
}

func truthPost(t *testing.T, g *runningGateway, session, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+g.addr+"/anthropic/v1/messages", strings.NewReader(body))
	req.Header.Set("x-api-key", fixGatewayToken)
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-opensoul-session", session)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

// TestClearCooldownListsWhatItCleared: only profiles that had something
// to clear are named.
func TestClearCooldownListsWhatItCleared(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key")
	e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:work")
	if err := store.New(e.state).UpdateState("main", func(s *store.State) error {
		s.UsageStats["anthropic:work"] = &store.UsageStats{CooldownUntil: time.Now().UnixMilli() + 60_000, ErrorCount: 1}
		s.UsageStats["anthropic:manual"] = &store.UsageStats{LastUsed: 1}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out := e.ok("", "models", "auth", "clear-cooldown", "--provider", "anthropic")
	if !strings.Contains(out, "Cleared anthropic:work (1 other profile(s) had nothing to clear)") || strings.Contains(out, "anthropic:manual") {
		t.Errorf("clear-cooldown: %q", out)
	}
	if out := e.ok("", "models", "auth", "clear-cooldown", "--provider", "anthropic"); !strings.HasPrefix(out, "Nothing to clear") {
		t.Errorf("second clear-cooldown: %q", out)
	}
}

// TestPolicyTestMissingDir: a path that does not exist fails, never
// "PASS" over the built-in tests alone.
func TestPolicyTestMissingDir(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, cmd := range []string{"test", "check"} {
		out, errs, code := e.run("", "policy", cmd, "/nonexistent/policies")
		if code != 1 || !strings.Contains(errs, "/nonexistent/policies") || strings.Contains(out, "PASS") {
			t.Errorf("policy %s on a missing dir: exit %d %q %q", cmd, code, out, errs)
		}
	}
}

// TestPasteTokenPutsNewProfileFirst: with an explicit order in force, a
// new profile goes to its front (config order edited in the YAML with its
// comments, store order in the store); --no-order leaves it alone.
func TestPasteTokenPutsNewProfileFirst(t *testing.T) {
	t.Parallel()
	for _, style := range []string{"flow", "block"} {
		e := newEnv(t)
		e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:old")
		list := "    anthropic: [anthropic:old] # the work account\n"
		if style == "block" {
			list = "    anthropic:\n      # the work account\n      - anthropic:old\n"
		}
		cfg := e.writeFile("opensoul.yaml", "# my config\nauth:\n  order:\n"+list)
		out := e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:new")
		if !strings.Contains(out, "Put anthropic:new first in config auth.order.anthropic") {
			t.Errorf("%s: paste-token did not say so:\n%s", style, out)
		}
		raw, _ := os.ReadFile(cfg)
		if !strings.Contains(string(raw), "# the work account") || !strings.Contains(string(raw), "# my config") {
			t.Errorf("%s: comments lost:\n%s", style, raw)
		}
		var ord orderReport
		json.Unmarshal([]byte(e.ok("", "models", "auth", "order", "get", "--provider", "anthropic", "--json")), &ord)
		if strings.Join(ord.Order, " ") != "anthropic:new anthropic:old" || ord.Serving != "anthropic:new" {
			t.Errorf("%s: order after paste-token: %+v\n%s", style, ord, raw)
		}
		e.ok(fixOpenAIKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:third", "--no-order", "--force")
		json.Unmarshal([]byte(e.ok("", "models", "auth", "order", "get", "--provider", "anthropic", "--json")), &ord)
		if strings.Join(ord.Order, " ") != "anthropic:new anthropic:old" {
			raw, _ := os.ReadFile(cfg)
			t.Errorf("%s: --no-order changed the order: %v\n%s", style, ord.Order, raw)
		}
	}
	// The agent store's order is edited in the store.
	e := newEnv(t)
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:old")
	e.ok("", "models", "auth", "order", "set", "--provider", "anthropic", "anthropic:old")
	if out := e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:new"); !strings.Contains(out, "first in the agent store's order") {
		t.Errorf("store order: %s", out)
	}
	if out := e.ok("", "models", "auth", "order", "get", "--provider", "anthropic"); !strings.Contains(out, "anthropic:new anthropic:old") || !strings.Contains(out, "source: agent store") {
		t.Errorf("store order after paste-token: %s", out)
	}
}

// TestVersion: `version` and `--version` print the build's version, the Go
// version and every provider module's version.
func TestVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out := e.ok("", args...)
		for _, want := range []string{"opensoul ", "commit ", "go       " + runtime.Version(), "anthropic", "1.0.0"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v lacks %q:\n%s", args, want, out)
			}
		}
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(e.ok("", "version", "--json")), &v); err != nil || v.GoVersion != runtime.Version() || len(v.Providers) == 0 {
		t.Errorf("version --json: %+v %v", v, err)
	}
}

// TestDoctorFix runs doctor --fix on a copy of a broken state: the dry run
// changes nothing, --yes makes the shown changes with backups, and no
// credential is lost.
func TestDoctorFix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:a")
	e.ok("", "models", "auth", "order", "set", "--provider", "anthropic", "anthropic:a")
	e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:b", "--no-order")
	st := store.New(e.state)
	if err := st.UpdateSessions("main", func(ss *store.Sessions) error {
		ss.Sessions["stuck"] = &store.Session{AuthProfileOverride: "anthropic:gone", AuthProfileOverrideSource: store.PinUser}
		ss.Sessions["fine"] = &store.Session{AuthProfileOverride: "anthropic:a", AuthProfileOverrideSource: store.PinUser}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	profiles, sessions := st.ProfilesPath("main"), st.SessionsPath("main")
	if err := os.Chmod(profiles, 0o644); err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string]string {
		out := map[string]string{}
		for _, p := range []string{profiles, sessions} {
			data, _ := os.ReadFile(p)
			fi, _ := os.Stat(p)
			out[p] = fi.Mode().String() + string(data)
		}
		return out
	}
	before := snapshot()
	dry := e.ok("", "doctor", "--fix")
	for _, want := range []string{"chmod 600 " + profiles, "-      \"authProfileOverride\": \"anthropic:gone\"", "+    \"anthropic:b\"", "Dry run: nothing changed"} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run lacks %q:\n%s", want, dry)
		}
	}
	if after := snapshot(); !reflectEqual(before, after) {
		t.Fatalf("the dry run changed files")
	}
	e.ok("", "doctor", "--fix", "--yes")
	if fi, _ := os.Stat(profiles); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode not fixed: %v", fi.Mode())
	}
	ss, _ := st.LoadSessions("main")
	if ss.Sessions["stuck"].AuthProfileOverride != "" || ss.Sessions["fine"].AuthProfileOverride != "anthropic:a" {
		t.Errorf("pins after --fix: stuck %+v fine %+v", ss.Sessions["stuck"], ss.Sessions["fine"])
	}
	p, _ := st.LoadProfiles("main")
	if strings.Join(p.Order["anthropic"], " ") != "anthropic:a anthropic:b" || p.Profiles["anthropic:a"].Secret() != fixAnthropicKey || p.Profiles["anthropic:b"].Secret() != fixSetupToken {
		t.Errorf("profiles after --fix: order %v, %d profiles", p.Order, len(p.Profiles))
	}
	for _, path := range []string{profiles, sessions} {
		matches, _ := filepath.Glob(path + ".bak-*")
		if len(matches) != 1 {
			t.Errorf("no single backup of %s: %v", path, matches)
			continue
		}
		if data, _ := os.ReadFile(matches[0]); !strings.HasSuffix(before[path], string(data)) {
			t.Errorf("backup %s is not the old content", matches[0])
		}
	}
	if out := e.ok("", "doctor", "--fix"); !strings.Contains(out, "nothing to repair") {
		t.Errorf("after --yes, more to repair:\n%s", out)
	}
}

func reflectEqual(a, b map[string]string) bool {
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
