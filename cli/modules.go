package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/wasm"
)

// modules lazily starts the WebAssembly host and the provider-module
// registry for commands that check secrets. It is built once per run.
type modules struct {
	once sync.Once
	host *wasm.Host
	reg  *wasm.Registry
	errs []error
	err  error
}

// registry returns the provider-module registry built from config
// (providers.<name>.module), starting the host on first use. Errors of
// individual modules are returned alongside a usable registry.
func (a *app) registry(ctx context.Context) (*wasm.Registry, []error, error) {
	if err := a.load(); err != nil {
		return nil, nil, err
	}
	a.mods.once.Do(func() {
		a.mods.host, a.mods.err = wasm.NewHost(ctx, a.cfg.Gateway.Modules.hostOptions(wasm.Options{
			// Compiled modules and their verdicts persist here, so a warm
			// models status loads no module at all.
			CacheDir: filepath.Join(cacheDir(a.environ), "wazero"),
			Logger:   slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		}))
		if a.mods.err != nil {
			return
		}
		paths := a.modulePaths()
		for name := range a.cfg.Providers {
			if _, ok := paths[name]; !ok {
				paths[name] = "" // built-in module, or the generic behaviour
			}
		}
		a.mods.reg, a.mods.errs = wasm.NewRegistry(ctx, a.mods.host, paths)
		a.cleanup = append(a.cleanup, func() { a.mods.host.Close(context.Background()) })
	})
	return a.mods.reg, a.mods.errs, a.mods.err
}

// modulePaths maps providers to their module files: every
// <state>/providers/<name>.wasm, then providers.<name>.module (~ is the
// home dir; relative paths are relative to the state dir). Providers not
// named keep their built-in module or the generic behaviour.
func (a *app) modulePaths() map[string]string {
	paths := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(a.st.Dir, "providers", "*.wasm"))
	for _, f := range files {
		paths[strings.TrimSuffix(filepath.Base(f), ".wasm")] = f
	}
	for name, p := range a.cfg.Providers {
		if p.Module != "" {
			m := a.expandHome(p.Module)
			if !filepath.IsAbs(m) {
				m = filepath.Join(a.st.Dir, m)
			}
			paths[name] = m
		}
	}
	return paths
}

// expandHome replaces a leading ~ or ~/ with the home dir, as a shell
// would; a path without one, or with no home dir to be found, is returned
// as it is.
func (a *app) expandHome(p string) string {
	rest, ok := strings.CutPrefix(p, "~")
	if !ok || (rest != "" && rest[0] != '/' && rest[0] != filepath.Separator) {
		return p // ~user/... is not expanded
	}
	home := a.environ["HOME"]
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return p
		}
		home = h
	}
	return filepath.Join(home, rest)
}

// backoffFile is where a running gateway lists the provider modules it is
// skipping (wasm.ReadBackoffs), for providers list and doctor.
func (a *app) backoffFile() string { return filepath.Join(a.st.Dir, "module-backoff.json") }

// prefetchVerdicts checks every credential at once, so the modules a cold
// run must compile load side by side; later checks hit the registry cache.
func (a *app) prefetchVerdicts(ctx context.Context, creds []store.Credential, now time.Time) {
	reg, _, err := a.registry(ctx)
	if err != nil || len(creds) < 2 {
		return
	}
	calls := make([]wasm.CheckCall, 0, len(creds))
	for _, c := range creds {
		calls = append(calls, wasm.CheckCall{Provider: c.Provider, Req: checkRequest(c, now)})
	}
	reg.CheckAll(ctx, calls)
}

func checkRequest(c store.Credential, now time.Time) wasm.CheckRequest {
	req := wasm.CheckRequest{Type: c.Type, Secret: c.Secret(), Now: now.UnixMilli()}
	if c.Expires != 0 {
		e := c.Expires
		req.ExpiresAt = &e
	}
	return req
}

// moduleChecker returns a checker that asks the provider's module about a
// credential. A module that fails is reported once and yields no verdict.
func (a *app) moduleChecker() func(ctx context.Context, c store.Credential, now time.Time) gateway.Verdict {
	warned := map[string]bool{}
	return func(ctx context.Context, c store.Credential, now time.Time) gateway.Verdict {
		return a.runCheck(ctx, c, now, warned)
	}
}

// runCheck asks the provider's module; the zero Verdict means none.
func (a *app) runCheck(ctx context.Context, c store.Credential, now time.Time, warned map[string]bool) gateway.Verdict {
	{
		reg, _, err := a.registry(ctx)
		if err != nil {
			return gateway.Verdict{}
		}
		res, err := reg.Check(ctx, c.Provider, checkRequest(c, now))
		if err != nil {
			var me *wasm.ModuleError
			if errors.As(err, &me) && !warned[c.Provider] {
				warned[c.Provider] = true
				a.warnf("the %s provider module could not check a credential: %v", c.Provider, err)
			}
			return gateway.Verdict{}
		}
		if !res.Valid {
			reason := res.Reason
			if res.Hint != "" {
				reason += " (" + res.Hint + ")"
			}
			return gateway.Verdict{Status: gateway.ModuleStatus(c, now, false), Kind: res.Kind, Reason: reason}
		}
		return gateway.Verdict{Status: gateway.ModuleStatus(c, now, true), Kind: res.Kind}
	}
}

// cacheDir is the user's cache dir as the given environment defines it.
func cacheDir(environ map[string]string) string {
	if d := environ["XDG_CACHE_HOME"]; d != "" {
		return filepath.Join(d, "opensoul")
	}
	if h := environ["HOME"]; h != "" {
		return filepath.Join(h, ".cache", "opensoul")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "opensoul-cache")
	}
	return filepath.Join(d, "opensoul")
}
