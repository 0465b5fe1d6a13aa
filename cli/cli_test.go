package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/cli/dotenv"
	"github.com/opensoul/opensoul/gateway"
	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/gateway/store"
)

// Fixture secrets: no command may ever print them.
const (
	fixAnthropicKey = "sk-ant-api03-FIXTUREsecretAAAAbbbbCCCCddddEEEEffffGGGGhhhhIIIIjjjjKKKKllllMMMMnnnnOOOOppppQQQQrrrrSSSStt1234"
	fixSetupToken   = "sk-ant-oat01-FIXTUREsetupTokenGGGGhhhhIIIIjjjjKKKKllllMMMMnnnnOOOOppppQQQQrrrrSSSStttt-uuuuVVVVwwxxyyzz01234"
	fixOpenAIKey    = "sk-proj-FIXTUREopenaiXXXXyyyyZZZZ0000111122223333"
	fixEnvKey       = "sk-or-v1-FIXTUREfromDotEnv9999888877776666"
	fixGatewayToken = "osk-FIXTUREgatewayTokenabcdefabcdef"
)

var fixtureSecrets = []string{fixAnthropicKey, fixSetupToken, fixOpenAIKey, fixEnvKey, fixGatewayToken}

// env is a test environment: a state dir and the process env given to Run.
type env struct {
	t     *testing.T
	state string
	vars  map[string]string
	// every byte any command printed, for the secret scan
	seen bytes.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	seedModuleCache(t, dir)
	return &env{t: t, state: filepath.Join(dir, "state"), vars: map[string]string{"HOME": dir}}
}

func (e *env) run(stdin string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var out, errb bytes.Buffer
	environ := []string{"OPENSOUL_STATE_DIR=" + e.state}
	for k, v := range e.vars {
		environ = append(environ, k+"="+v)
	}
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb, environ)
	e.seen.Write(out.Bytes())
	e.seen.Write(errb.Bytes())
	return out.String(), errb.String(), code
}

// ok runs a command that must succeed and returns its stdout.
func (e *env) ok(stdin string, args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(stdin, args...)
	if code != 0 {
		e.t.Fatalf("opensoul %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (e *env) writeFile(rel, content string) string {
	e.t.Helper()
	p := filepath.Join(e.state, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) assertNoSecrets() {
	e.t.Helper()
	for _, s := range fixtureSecrets {
		if bytes.Contains(e.seen.Bytes(), []byte(s)) {
			e.t.Errorf("a fixture secret (%s…) appeared in command output", s[:12])
		}
		// A long unmasked tail is a leak too.
		if bytes.Contains(e.seen.Bytes(), []byte(s[len(s)-12:])) {
			e.t.Errorf("the last 12 characters of a fixture secret appeared in output")
		}
	}
}

func TestEveryCommandKeepsSecretsOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["OPENAI_API_KEY"] = fixOpenAIKey
	e.writeFile(".env", "OPENROUTER_API_KEY="+fixEnvKey+"\nOPENSOUL_GATEWAY_TOKEN="+fixGatewayToken+"\n")
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:default")
	e.ok("export ANTHROPIC_OAUTH_TOKEN='"+fixSetupToken+"'\n", "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:work", "--expires-in", "2h")
	e.ok("", "models", "auth", "order", "set", "--provider", "anthropic", "anthropic:work", "anthropic:default")
	for _, args := range [][]string{
		{"models", "status"}, {"models", "status", "--json"}, {"models", "status", "--check"},
		{"models", "list"}, {"models", "list", "--json"},
		{"models", "auth", "list"}, {"models", "auth", "list", "--json"},
		{"models", "auth", "order", "get", "--provider", "anthropic", "--json"},
		{"config", "show"}, {"config", "show", "--json"}, {"config", "validate"},
		{"doctor"}, {"doctor", "--json"},
		{"monitor"}, {"monitor", "--format", "json"}, {"monitor", "--format", "simple", "--stdout"},
		{"models", "auth", "clear-cooldown", "--provider", "anthropic"},
		{"models", "auth", "remove", "anthropic:default"},
	} {
		e.run("", args...)
	}
	e.run(fixSetupToken+" trailing words", "models", "auth", "paste-token", "--provider", "anthropic")
	e.run("", "models", "auth", "setup-token", "--provider", "anthropic")
	e.assertNoSecrets()
	if !strings.Contains(e.seen.String(), "sk-ant-oat01-…") {
		t.Error("masked labels should keep a recognisable prefix")
	}
}

func TestPasteTokenNormalisesAndRecordsConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.writeFile("opensoul.yaml", "# my config\ngateway:\n  listen: 127.0.0.1:18789 # keep me\n\nauth:\n  # profiles below\n  order:\n    anthropic: [anthropic:manual]\nlog:\n  level: info\n")
	e.ok("\n  export ANTHROPIC_OAUTH_TOKEN=\""+fixSetupToken+"\"  \r\n", "models", "auth", "paste-token", "--provider", "anthropic", "--expires-in", "365d")
	p, err := store.New(e.state).LoadProfiles("main")
	if err != nil {
		t.Fatal(err)
	}
	c := p.Profiles["anthropic:manual"]
	if c.Token != fixSetupToken || c.Type != "token" || c.Provider != "anthropic" {
		t.Fatalf("stored %+v", c)
	}
	if d := time.Until(time.UnixMilli(c.Expires)); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("expires in %v, want ~365d", d)
	}
	got, _ := os.ReadFile(cfg)
	want := "# my config\ngateway:\n  listen: 127.0.0.1:18789 # keep me\n\nauth:\n  # profiles below\n  order:\n    anthropic: [anthropic:manual]\n  profiles:\n    anthropic:manual:\n      provider: anthropic\n      mode: token\nlog:\n  level: info\n"
	if string(got) != want {
		t.Errorf("config after upsert:\n%s\nwant:\n%s", got, want)
	}
	// Pasting again with another type updates the entry in place.
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key")
	got, _ = os.ReadFile(cfg)
	if !strings.Contains(string(got), "      mode: api_key\nlog:") || strings.Count(string(got), "anthropic:manual:") != 1 {
		t.Errorf("re-paste should replace the entry:\n%s", got)
	}
	e.assertNoSecrets()
}

func TestPasteTokenRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"no provider", "x", nil, "--provider is required"},
		{"empty", "  \n", []string{"--provider", "anthropic"}, "empty input"},
		{"mangled", "sk-ant-api03-abc def", []string{"--provider", "anthropic"}, "unexpected character at position 17"},
		{"bad type", "x", []string{"--provider", "anthropic", "--type", "bearer"}, "--type"},
		{"bad id", "x", []string{"--provider", "anthropic", "--profile-id", "openai:x"}, "must look like anthropic:<name>"},
		{"bad expiry", "x", []string{"--provider", "anthropic", "--expires-in", "soon"}, "--expires-in"},
		{"secret as argument", "", []string{"--provider", "anthropic", "sk-ant-xyz"}, "not from arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			_, errs, code := e.run(tc.stdin, append([]string{"models", "auth", "paste-token"}, tc.args...)...)
			if code == 0 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want failure mentioning %q", code, errs, tc.want)
			}
			if _, err := os.Stat(store.New(e.state).ProfilesPath("main")); err == nil {
				t.Error("nothing should have been stored")
			}
		})
	}
}

func TestSetupTokenNeedsTTY(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, errs, code := e.run(fixSetupToken, "models", "auth", "setup-token", "--provider", "anthropic")
	if code != 2 || !strings.Contains(errs, "paste-token") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func TestSetupTokenShape(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		tok  string
		want string
	}{
		"ok":      {fixSetupToken, ""},
		"api key": {fixAnthropicKey, "API key"},
		"short":   {"sk-ant-oat01-abc", "too short"},
		"other":   {"hello-world-this-is-long-enough-to-pass-the-length-check-1234567890abcdefghij", "starts with"},
	} {
		err := checkSetupTokenShape(providers.For("anthropic"), tc.tok)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}

func TestOrderCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key", "--profile-id", "anthropic:default")
	e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:work")
	e.ok(fixOpenAIKey, "models", "auth", "paste-token", "--provider", "openai", "--type", "api_key")

	// flags after positional arguments
	e.ok("", "models", "auth", "order", "set", "anthropic:work", "anthropic:default", "--provider", "anthropic")
	var got struct {
		Agent, Provider string
		Order           []string
	}
	if err := json.Unmarshal([]byte(e.ok("", "models", "auth", "order", "get", "--provider", "anthropic", "--json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Agent != "main" || got.Provider != "anthropic" || strings.Join(got.Order, ",") != "anthropic:work,anthropic:default" {
		t.Fatalf("order get --json = %+v", got)
	}
	for _, bad := range []struct{ id, want string }{
		{"anthropic:nope", `no profile "anthropic:nope"`},
		{"openai:manual", "belongs to provider openai"},
	} {
		_, errs, code := e.run("", "models", "auth", "order", "set", "--provider", "anthropic", bad.id)
		if code == 0 || !strings.Contains(errs, bad.want) {
			t.Errorf("order set %s: exit %d %q", bad.id, code, errs)
		}
	}
	// another agent inherits main's profiles and may order them itself
	e.ok("", "models", "auth", "order", "set", "--agent", "cron", "--provider", "anthropic", "anthropic:default")
	if out := e.ok("", "models", "auth", "order", "get", "--provider", "anthropic", "--agent", "cron"); !strings.Contains(out, "cron/anthropic: anthropic:default") {
		t.Errorf("cron order: %q", out)
	}
	if out := e.ok("", "models", "auth", "order", "get", "--provider", "anthropic"); !strings.Contains(out, "anthropic:work anthropic:default") {
		t.Errorf("main order changed by cron's: %q", out)
	}
	e.ok("", "models", "auth", "order", "clear", "--provider", "anthropic")
	if out := e.ok("", "models", "auth", "order", "get", "--provider", "anthropic"); !strings.Contains(out, "no explicit order") {
		t.Errorf("after clear: %q", out)
	}
	e.assertNoSecrets()
}

func TestStatusCheckExitCodes(t *testing.T) {
	t.Parallel()
	now := time.Now().UnixMilli()
	profiles := func(expires int64) string {
		b, _ := json.Marshal(store.Profiles{Version: 1, Profiles: map[string]store.Credential{
			"anthropic:work": {Type: "token", Provider: "anthropic", Token: fixSetupToken, Expires: expires},
		}})
		return string(b)
	}
	cases := []struct {
		name     string
		profiles string
		env      map[string]string
		want     int
		problem  string
	}{
		{"valid", profiles(now + 72*3600_000), nil, 0, ""},
		{"expiring", profiles(now + 3600_000), nil, 2, "expires in"},
		{"expired", profiles(now - 3600_000), nil, 1, "anthropic:work: expired"},
		{"missing provider in use", "", nil, 1, "anthropic/claude-sonnet-5: no credential"},
		{"env covers provider", "", map[string]string{"ANTHROPIC_API_KEY": fixAnthropicKey}, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			for k, v := range tc.env {
				e.vars[k] = v
			}
			if tc.profiles != "" {
				e.writeFile("agents/main/agent/auth-profiles.json", tc.profiles)
			}
			out, _, code := e.run("", "models", "status", "--check", "--json")
			if code != tc.want {
				t.Fatalf("exit %d, want %d\n%s", code, tc.want, out)
			}
			var rep statusReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("bad JSON: %v\n%s", err, out)
			}
			if rep.Agent != "main" || rep.StorePath == "" || rep.Check == nil || rep.Check.ExitCode != tc.want {
				t.Errorf("report: %+v", rep)
			}
			if tc.problem != "" && !strings.Contains(strings.Join(rep.Check.Problems, "\n"), tc.problem) {
				t.Errorf("problems %q, want %q", rep.Check.Problems, tc.problem)
			}
			// the text form exits the same way
			if _, _, code := e.run("", "models", "status", "--check"); code != tc.want {
				t.Errorf("text --check exit %d, want %d", code, tc.want)
			}
			e.assertNoSecrets()
		})
	}
}

func TestStatusShowsEnvSourceAndCooldown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeFile(".env", "# keys for the daemon\nexport OPENROUTER_API_KEY="+fixEnvKey+"\n")
	e.writeFile("opensoul.yaml", "agents:\n  defaults:\n    model:\n      primary: openrouter/anthropic/claude-sonnet-5\n")
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key")
	now := time.Now().UnixMilli()
	st := store.New(e.state)
	if err := st.UpdateState("main", func(s *store.State) error {
		s.UsageStats["anthropic:manual"] = &store.UsageStats{CooldownUntil: now + 4*60_000, DisabledUntil: now + 3*3600_000, DisabledReason: "billing"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out := e.ok("", "models", "status")
	for _, want := range []string{
		"openrouter — env: OPENROUTER_API_KEY (from " + filepath.Join(e.state, ".env") + ")",
		"cooldown 4m", "disabled: billing (3h left)", "sk-ant-api03-…1234",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	e.ok("", "models", "auth", "clear-cooldown", "anthropic:manual")
	if out := e.ok("", "models", "status"); strings.Contains(out, "cooldown") || strings.Contains(out, "disabled") {
		t.Errorf("clear-cooldown left:\n%s", out)
	}
	e.assertNoSecrets()
}

func TestUnknownCommandSuggests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, errs, code := e.run("", "models", "stauts")
	if code != 2 || !strings.Contains(errs, `did you mean "status"`) {
		t.Fatalf("exit %d, %q", code, errs)
	}
	_, errs, code = e.run("", "modles")
	if code != 2 || !strings.Contains(errs, `did you mean "models"`) {
		t.Fatalf("exit %d, %q", code, errs)
	}
}

func TestHelpShowsExamples(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{
		{"models", "status"}, {"models", "auth", "paste-token"}, {"models", "auth", "setup-token"},
		{"models", "auth", "order", "set"}, {"models", "auth", "clear-cooldown"}, {"config", "show"}, {"doctor"}, {"onboard"},
	} {
		out, _, code := e.run("", append(args, "--help")...)
		if code != 0 || !strings.Contains(out, "Example") || !strings.Contains(out, "opensoul "+strings.Join(args, " ")) {
			t.Errorf("%v --help: exit %d\n%s", args, code, out)
		}
	}
}

func TestCorruptStoreIsReportedNotOverwritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.writeFile("agents/main/agent/auth-profiles.json", `{"version":1,"profiles":{`)
	_, errs, code := e.run(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic")
	if code == 0 || !strings.Contains(errs, p) || !strings.Contains(errs, "not valid JSON") {
		t.Fatalf("exit %d, %q", code, errs)
	}
	if b, _ := os.ReadFile(p); string(b) != `{"version":1,"profiles":{` {
		t.Errorf("corrupt store was overwritten: %q", b)
	}
	if _, errs, code := e.run("", "models", "status"); code == 0 || !strings.Contains(errs, p) {
		t.Errorf("status on corrupt store: exit %d %q", code, errs)
	}
	e.assertNoSecrets()
}

func TestOnboardNonInteractive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out := e.ok(fixEnvKey+"\n", "onboard", "--provider", "openrouter")
	if !strings.Contains(out, "OPENROUTER_API_KEY=sk-or-v1-…6666") {
		t.Errorf("onboard output:\n%s", out)
	}
	vars, err := dotenv.ReadFile(filepath.Join(e.state, ".env"))
	if err != nil {
		t.Fatal(err)
	}
	if vars["OPENROUTER_API_KEY"] != fixEnvKey || !strings.HasPrefix(vars["OPENSOUL_GATEWAY_TOKEN"], "osk-") {
		t.Errorf(".env = %v", vars)
	}
	fi, _ := os.Stat(filepath.Join(e.state, ".env"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf(".env mode %o", fi.Mode().Perm())
	}
	// A second run keeps the token and config.
	token := vars["OPENSOUL_GATEWAY_TOKEN"]
	e.ok("", "onboard")
	vars, _ = dotenv.ReadFile(filepath.Join(e.state, ".env"))
	if vars["OPENSOUL_GATEWAY_TOKEN"] != token {
		t.Error("onboard replaced an existing gateway token")
	}
	if out := e.ok("", "models", "status"); !strings.Contains(out, "env: OPENROUTER_API_KEY") {
		t.Errorf("status after onboard:\n%s", out)
	}
	if out := e.ok("", "config", "show"); strings.Contains(out, token) || !strings.Contains(out, redactedValue) {
		t.Errorf("config show must redact the gateway token:\n%s", out)
	}
}

func TestProviderModuleVerdicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Without --type the module recognises an API key.
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:default")
	p, _ := store.New(e.state).LoadProfiles("main")
	if c := p.Profiles["anthropic:default"]; c.Type != store.TypeAPIKey || c.Key != fixAnthropicKey {
		t.Fatalf("detected type %q", c.Type)
	}
	// An OpenAI key pasted as anthropic is refused when not interactive...
	_, errs, code := e.run(fixOpenAIKey, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:oops")
	if code == 0 || !strings.Contains(errs, "the anthropic module rejects this secret") || !strings.Contains(errs, "--force") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// ...stored with --force, and then shown as invalid, failing --check.
	e.ok(fixOpenAIKey, "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", "anthropic:oops", "--force")
	out, _, code := e.run("", "models", "status", "--check")
	if code != 1 || !strings.Contains(out, "anthropic:oops") || !strings.Contains(out, "invalid") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	e.assertNoSecrets()
}

func TestVerdictCacheHoldsNoSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key")
	first := e.ok("", "models", "status", "--json")
	data, err := os.ReadFile(filepath.Join(e.vars["HOME"], ".cache", "opensoul", "wazero", "checks.json"))
	if err != nil {
		t.Fatalf("verdict cache not written: %v", err)
	}
	for _, s := range fixtureSecrets {
		if strings.Contains(string(data), s) || strings.Contains(string(data), s[len(s)-8:]) {
			t.Fatal("verdict cache holds a secret")
		}
	}
	// A warm run answers the same from the cache.
	if again := e.ok("", "models", "status", "--json"); again != first {
		t.Errorf("warm status differs:\n%s\n%s", first, again)
	}
}

func TestReplacingASecretLiftsItsDisable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key")
	st := store.New(e.state)
	if err := st.UpdateState("main", func(s *store.State) error {
		s.UsageStats["anthropic:manual"] = &store.UsageStats{LastUsed: 7, DisabledUntil: gateway.DisabledUntilChanged, DisabledReason: "auth", ErrorCount: 3}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if out := e.ok("", "models", "status"); !strings.Contains(out, "disabled: auth (until the credential is replaced") {
		t.Fatalf("status:\n%s", out)
	}
	// The same secret again changes nothing; a new one starts afresh.
	e.ok(fixAnthropicKey, "models", "auth", "paste-token", "--provider", "anthropic", "--type", "api_key")
	if s, _ := st.LoadState("main"); s.UsageStats["anthropic:manual"].DisabledReason != "auth" {
		t.Fatal("re-pasting the same secret lifted the disable")
	}
	e.ok(fixSetupToken, "models", "auth", "paste-token", "--provider", "anthropic")
	s, _ := st.LoadState("main")
	if u := s.UsageStats["anthropic:manual"]; u.DisabledUntil != 0 || u.ErrorCount != 0 || u.LastUsed != 7 {
		t.Errorf("after a new secret: %+v", u)
	}
}
