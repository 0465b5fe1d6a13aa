package doctor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opensoul/opensoul/cli/service"
)

// serviceEnvGap is a variable this shell has that the installed service
// will not see as it is here.
type serviceEnvGap struct {
	Name    string
	Differs bool // the service sees another value (never shown)
}

// serviceEnvGaps compares this shell's provider keys and gateway token
// with what the service will have: the manager's environment, <state>/.env,
// env.vars and, with env.shellEnv, the login shell. installed is false
// when no service is installed (then nothing is compared).
func (s *Setup) serviceEnvGaps(ctx context.Context) (gaps []serviceEnvGap, installed bool, err error) {
	svc, err := s.Service()
	if err != nil {
		return nil, false, err
	}
	if _, err := svc.Installed(); errors.Is(err, service.ErrNotInstalled) {
		return nil, false, nil
	}
	sources, err := s.ServiceEnv(ctx, svc)
	if err != nil {
		return nil, true, err
	}
	for _, name := range s.ServiceVars {
		v := s.Environ[name]
		if v == "" {
			continue
		}
		got, found := "", false
		for _, src := range sources {
			if got, found = src[name]; found && got != "" {
				break
			}
		}
		switch {
		case !found || got == "":
			gaps = append(gaps, serviceEnvGap{Name: name})
		case got != v:
			gaps = append(gaps, serviceEnvGap{Name: name, Differs: true})
		}
	}
	return gaps, true, nil
}

// serviceEnvChecks is doctor's "service env" finding, one per gap.
func (s *Setup) serviceEnvChecks(ctx context.Context, add func(name, status, detail, fix string)) {
	gaps, installed, err := s.serviceEnvGaps(ctx)
	switch {
	case errors.Is(err, service.ErrUnsupported):
		return
	case err != nil:
		add("service env", "warn", err.Error(), "")
		return
	case !installed:
		return
	}
	envFile := filepath.Join(s.Store.Dir, ".env")
	for _, g := range gaps {
		what := "is set in this shell but the gateway service will not have it"
		if g.Differs {
			what = "differs between this shell and what the gateway service will have"
		}
		add("service env "+g.Name, "warn", g.Name+" "+what, "opensoul doctor --fix (copies it into "+envFile+", which the gateway reloads by itself)")
	}
	if len(gaps) == 0 {
		add("service env", "ok", "the gateway service has every provider key and token this shell has", "")
	}
}

// fixServiceEnv copies each gap into <state>/.env: all with yes, each
// one the user says yes to on a terminal, none otherwise (a dry run that
// names them, like the rest of --fix). The rest of the file is kept; it
// stays 0600.
func (s *Setup) fixServiceEnv(ctx context.Context, yes bool) error {
	gaps, installed, err := s.serviceEnvGaps(ctx)
	if errors.Is(err, service.ErrUnsupported) {
		return nil
	}
	if err != nil || !installed || len(gaps) == 0 {
		return err
	}
	envFile := filepath.Join(s.Store.Dir, ".env")
	if !yes && !s.Interactive {
		var names []string
		for _, g := range gaps {
			names = append(names, g.Name)
		}
		fmt.Fprintf(s.Stdout, "Would copy %s from this shell into %s for the gateway service (--fix --yes does).\n", strings.Join(names, ", "), envFile)
		return nil
	}
	if err := s.Store.EnsureDir(); err != nil {
		return err
	}
	in := bufio.NewReader(s.Stdin)
	var copied []string
	for _, g := range gaps {
		if !yes {
			fmt.Fprintf(s.Stdout, "Copy %s from this shell into %s for the gateway service? [y/N] ", g.Name, envFile)
			line, _ := in.ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
				continue
			}
		}
		if err := s.SaveEnv(envFile, g.Name, s.Environ[g.Name]); err != nil {
			return fmt.Errorf("%s: %w", envFile, err)
		}
		copied = append(copied, g.Name)
	}
	if len(copied) > 0 {
		slices.Sort(copied)
		fmt.Fprintf(s.Stdout, "Copied %s into %s. The gateway reloads .env by itself; `opensoul gateway restart` is not needed.\n", strings.Join(copied, ", "), envFile)
	}
	return nil
}
