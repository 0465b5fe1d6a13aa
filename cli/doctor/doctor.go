// Package doctor is `opensoul doctor`: the installation checks and the
// repairs of --fix. It judges credentials by the resolver's decisions the
// CLI computes for `models status` (the same the gateway makes) and
// repairs state files through gateway/store, so it never re-derives a
// decision or writes a file another way. It receives all it needs from
// the CLI through Host and Setup (values and function fields) and never
// imports cli; the command itself (flags, --help, exit code) is
// cli/doctor_cmd.go, as cli/connect_cmd.go is for cli/connect.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opensoul/opensoul/cli/service"
	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/keep"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"
)

// Check is one finding of `opensoul doctor`.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok | warn | fail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Host is what doctor needs before the config loads.
type Host struct {
	StatePath func() (string, error) // the state dir the config would use
	// Load loads the config (once); its error is the config check's finding.
	Load func() (*Setup, error)
}

// Setup is the CLI's loaded config, store and views, as doctor uses them.
type Setup struct {
	Stdin       io.Reader
	Stdout      io.Writer
	Interactive bool              // Stdin is a terminal (--fix may ask)
	Environ     map[string]string // this process's environment
	Now         func() time.Time

	ConfigFile    string
	TokenWarnings []string // credentials dropped because they hold a gateway or agent token
	Store         *store.Store
	Env           gateway.Env // the environment credentials the gateway would see
	// AllowsProvider: a model of agents.defaults.models is the
	// provider's. nil: that list is empty.
	AllowsProvider func(provider string) bool
	// Agent resolves --agent ("" is the configured default).
	Agent func(flag string) (string, error)
	// Status is `models status`'s view of the agent's credentials.
	Status func(ctx context.Context, agent string, now time.Time) (*Status, error)
	// Until says how long a cooldown or disable until (ms) lasts, as
	// models status says it.
	Until      func(until int64, now time.Time) string
	PolicyDirs []string
	Registry   func(ctx context.Context) (*wasm.Registry, []error, error)
	// BackoffFile is where the running gateway records the modules it
	// skips; BackoffText says what one means for its provider.
	BackoffFile string
	BackoffText func(wasm.Backoff) string

	// Service is this machine's service manager; ServiceEnv the installed
	// service's environment sources in the order the gateway reads them;
	// ServiceVars the variables compared (provider keys, gateway token);
	// SaveEnv writes one variable into a .env file, keeping the rest.
	Service     func() (*service.Service, error)
	ServiceEnv  func(ctx context.Context, svc *service.Service) ([]map[string]string, error)
	ServiceVars []string
	SaveEnv     func(path, key, value string) error

	// RefreshSkew is auth.refreshSkewMs; Refresher refreshes logins as the
	// gateway does (its OAuth clients, its lock).
	RefreshSkew time.Duration
	Refresher   func(ctx context.Context) *keep.Refresher
}

// Run runs every check for the agent named by agentFlag ("" is the
// default) and returns the findings in order.
func Run(ctx context.Context, h Host, agentFlag string) []Check {
	var checks []Check
	add := func(name, status, detail, fix string) {
		checks = append(checks, Check{name, status, detail, fix})
	}
	stateDir, err := h.StatePath()
	if err != nil {
		add("state dir", "fail", err.Error(), "set OPENSOUL_STATE_DIR")
		return checks
	}
	switch fi, err := os.Stat(stateDir); {
	case errors.Is(err, fs.ErrNotExist):
		add("state dir", "warn", stateDir+" does not exist yet", "opensoul onboard")
	case err != nil:
		add("state dir", "fail", err.Error(), "")
	case fi.Mode().Perm()&0o077 != 0:
		add("state dir", "fail", fmt.Sprintf("%s is mode %o; others can read your credentials", stateDir, fi.Mode().Perm()), "chmod 700 "+stateDir)
	default:
		add("state dir", "ok", stateDir, "")
	}
	envFile := filepath.Join(stateDir, ".env")
	if fi, err := os.Stat(envFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		add(".env", "fail", fmt.Sprintf("%s is mode %o", envFile, fi.Mode().Perm()), "chmod 600 "+envFile)
	}
	s, err := h.Load()
	if err != nil {
		add("config", "fail", err.Error(), "edit the file named above, then: opensoul config validate")
		return checks
	}
	if _, err := os.Stat(s.ConfigFile); err != nil {
		add("config", "warn", s.ConfigFile+" not found; using built-in defaults", "opensoul onboard")
	} else {
		add("config", "ok", s.ConfigFile, "")
	}
	for _, w := range s.TokenWarnings {
		add("client token", "warn", w, "unset it where the gateway runs; clients take the token as ANTHROPIC_AUTH_TOKEN")
	}
	ag, err := s.Agent(agentFlag)
	if err != nil {
		add("agent", "fail", err.Error(), "")
		return checks
	}
	for _, p := range []string{s.Store.ProfilesPath(ag), s.Store.StatePath(ag)} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			add("store", "fail", fmt.Sprintf("%s is mode %o", p, fi.Mode().Perm()), "chmod 600 "+p)
		}
	}
	rep, err := s.Status(ctx, ag, time.Now())
	if err != nil {
		add("store", "fail", err.Error(), "")
		return checks
	}
	add("store", "ok", rep.StorePath, "")
	for _, c := range s.credentialChecks(rep, ag, time.Now()) {
		add(c.Name, c.Status, c.Detail, c.Fix)
	}
	s.staleStateChecks(ag, add) // fix_state.go
	if files, err := policy.Check(ctx, s.PolicyDirs); err != nil {
		add("policies", "fail", err.Error(), "fix the Rego named above, then: opensoul policy check")
	} else {
		add("policies", "ok", fmt.Sprintf("%d file(s) compile", len(files)), "")
	}
	if reg, errs, err := s.Registry(ctx); err != nil {
		add("provider modules", "fail", err.Error(), "")
	} else {
		errs = append(errs, reg.Load(ctx)...)
		for _, e := range errs {
			add("provider modules", "fail", e.Error(), "fix or remove the module file named above")
		}
		if len(errs) == 0 {
			add("provider modules", "ok", "every module loads", "")
		}
	}
	s.moduleBackoffChecks(add)
	s.serviceEnvChecks(ctx, add)
	return checks
}

// moduleBackoffChecks warns about provider modules the running gateway is
// skipping because their calls kept hitting the deadline or trapping.
func (s *Setup) moduleBackoffChecks(add func(name, status, detail, fix string)) {
	skipped, err := wasm.ReadBackoffs(s.BackoffFile)
	if err != nil {
		add("provider module backoff", "warn", err.Error(), "delete the file; a running gateway rewrites it")
	}
	for _, b := range skipped {
		add("provider module "+b.Provider, "warn", s.BackoffText(b),
			"fix or replace "+b.Module+" (the gateway loads a changed file without a restart), or remove providers."+b.Provider+".module")
	}
}
