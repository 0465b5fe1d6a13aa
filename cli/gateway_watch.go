package cli

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

// gatewayWatcher applies config, .env, policy and module edits to a
// running gateway. A broken edit is refused and logged; the old one stays
// whole: a reload loads a new config value and puts it in use only when
// the gateway took it.
type gatewayWatcher struct {
	a   *app
	g   *builtGateway
	log *slog.Logger
	// What the gateway started with: the settings only a restart changes.
	run         runInfo
	startFormat string

	stamps []store.Stamp     // of the config file and both .env files
	errs   gateway.ErrorOnce // each refusal ("config", "policies", "modules") logged once
}

func newGatewayWatcher(a *app, g *builtGateway, run runInfo) *gatewayWatcher {
	w := &gatewayWatcher{a: a, g: g, log: g.log, run: run, startFormat: a.cfg.Log.Format}
	w.stamps = w.stamp()
	return w
}

// stamp fingerprints the config file and both .env files.
func (w *gatewayWatcher) stamp() []store.Stamp {
	return store.StampsOf(w.a.cfgFile, filepath.Join(w.a.st.Dir, ".env"), ".env")
}

// check applies what changed; after a change it warms the agents again
// (gateway.Server.Warm), so the next first requests do not evaluate the
// new policies or ask the new module themselves.
func (w *gatewayWatcher) check(ctx context.Context) {
	warm := false
	if s := w.stamp(); !slices.Equal(s, w.stamps) {
		w.stamps = s
		warm = w.reloadConfig()
	}
	warm = w.reloadModules(ctx) || warm
	changed, err := w.g.engine.Reload(ctx)
	switch {
	case err != nil:
		if w.errs.Changed("policies", err) {
			w.log.Error("policy change refused; keeping the policies in force", "err", err)
		}
	case changed:
		w.errs.Clear("policies")
		w.log.Info("policies reloaded", "files", len(w.g.engine.Files()))
		warm = true
	}
	if warm {
		w.g.srv.Warm(ctx)
	}
}

// reloadModules applies module files that changed on disk, or moved in
// config, like policies: a module that fails to load is refused, its file
// named in the log once, and the module in force kept. It reports whether
// a module was replaced.
func (w *gatewayWatcher) reloadModules(ctx context.Context) bool {
	updated, errs := w.g.modules.Update(ctx, w.a.modulePaths())
	if len(updated) > 0 {
		w.log.Info("provider modules reloaded", "providers", updated)
	}
	msg := errors.Join(errs...)
	switch {
	case msg == nil:
		w.errs.Clear("modules")
	case w.errs.Changed("modules", msg):
		for _, err := range errs {
			w.log.Error("provider module change refused; keeping the module in force", "err", err)
		}
	}
	return len(updated) > 0
}

// reloadConfig puts an edited config in force, or refuses it; it reports
// whether it did.
func (w *gatewayWatcher) reloadConfig() bool {
	l, err := loadConfig(w.a.configSource())
	if err == nil {
		err = w.g.srv.SetConfig(gatewayConfig(l.Cfg, w.g.listen))
	}
	if err != nil {
		if w.errs.Changed("config", err) {
			w.log.Error("config change refused; keeping the config in force", "err", err)
		}
		return false
	}
	w.errs.Clear("config")
	oldDirs := w.a.policyDirs()
	w.a.use(l)
	setLevel(w.g.level, l.Cfg.Log.Level)
	w.g.engine.SetTimeout(ms(l.Cfg.Policy.TimeoutMs))
	if dirs := w.a.policyDirs(); !slices.Equal(dirs, oldDirs) {
		w.g.engine.SetDirs(dirs) // the policy reload right after this reads them
		w.log.Info("policy.dirs changed", "dirs", dirs)
	}
	w.g.srv.SetEnv(l.Env)
	w.g.chat.SetConfig(chatConfig(l.Cfg))
	w.noteRestart()
	w.log.Info("config reloaded", "file", l.File)
	return true
}
