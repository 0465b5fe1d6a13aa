package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/opensoul/opensoul/gateway"
)

// probeParallel is how many probes run at once.
const probeParallel = 4

// runProbes is `models status --probe`: one real, smallest request per
// profile shown in rep (of provider only, when set), each presented as the
// gateway presents it, at most timeout each. Progress goes to stderr when
// there is more than one.
func (a *app) runProbes(ctx context.Context, rep *statusReport, provider string, timeout time.Duration) error {
	snap, err := gateway.LoadSnapshot(a.st, rep.Agent)
	if err != nil {
		return err
	}
	p, err := a.prober(ctx)
	if err != nil {
		return err
	}
	var jobs []gateway.ProbeRequest
	var noModel []gateway.ProbeResult
	for _, ps := range rep.Providers {
		if provider != "" && ps.Provider != provider {
			continue
		}
		_, model, ok := SplitModelRef(ps.Model)
		for _, pr := range ps.Profiles {
			c, stored := snap.Profiles[pr.ID]
			switch {
			case !stored:
				continue // an environment or config key: not a profile
			case !ok:
				noModel = append(noModel, gateway.ProbeResult{Profile: pr.ID, Provider: ps.Provider,
					Error: fmt.Sprintf("no model of %s to ask (agents.defaults.model)", ps.Provider)})
				continue
			}
			jobs = append(jobs, gateway.ProbeRequest{Agent: rep.Agent, Profile: pr.ID, Cred: c, Model: model, Timeout: timeout})
		}
	}
	if provider != "" && len(jobs)+len(noModel) == 0 {
		return usageErr("no profile of provider %s to probe", provider)
	}
	rep.Probes = append(probeAll(ctx, p, jobs, a.stderr), noModel...)
	return nil
}

// probeAll runs the probes probeParallel at a time, in order of jobs in
// the result, telling progress on w as each ends.
func probeAll(ctx context.Context, p *gateway.Prober, jobs []gateway.ProbeRequest, w io.Writer) []gateway.ProbeResult {
	out := make([]gateway.ProbeResult, len(jobs))
	if len(jobs) > 1 {
		fmt.Fprintf(w, "probing %d profiles, %d at a time…\n", len(jobs), min(len(jobs), probeParallel))
	}
	var mu sync.Mutex
	done := 0
	sem := make(chan struct{}, probeParallel)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := p.Probe(ctx, j)
			mu.Lock()
			defer mu.Unlock()
			out[i] = r
			done++
			if len(jobs) > 1 {
				fmt.Fprintf(w, "  [%d/%d] %s: %s\n", done, len(jobs), r.Profile, probeOutcome(r))
			}
		}()
	}
	wg.Wait()
	return out
}

// prober presents credentials the way `opensoul gateway` would with this
// config: the same base URLs, provider modules and OAuth clients.
func (a *app) prober(ctx context.Context) (*gateway.Prober, error) {
	o := gateway.ProberOptions{Store: a.st, Config: gatewayConfig(a.cfg, "127.0.0.1:0"), Now: a.now}
	if reg, _, err := a.registry(ctx); err == nil && reg != nil {
		o.Modules = reg
	}
	return gateway.NewProber(o)
}

// probeOutcome is one probe in a few words: ok, or the provider's error.
func probeOutcome(r gateway.ProbeResult) string {
	lat := fmt.Sprintf("%dms", r.LatencyMs)
	switch {
	case r.OK:
		s := "ok " + lat
		if r.Refreshed {
			s += " (login refreshed first)"
		}
		return s
	case r.Error != "":
		return "error: " + r.Error
	}
	var kind []string
	for _, k := range []string{r.ErrorType, r.ErrorCode} {
		if k != "" {
			kind = append(kind, k)
		}
	}
	s := fmt.Sprintf("%d %s", r.Status, r.Reason)
	if len(kind) > 0 {
		s += " (" + strings.Join(kind, "/") + ")"
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s + " after " + lat
}

// probesFailed lists the probes that did not answer ok, for --check.
func (rep *statusReport) probesFailed() []string {
	var out []string
	for _, r := range rep.Probes {
		if !r.OK {
			out = append(out, fmt.Sprintf("probe %s: %s", r.Profile, probeOutcome(r)))
		}
	}
	return out
}

// writeProbes shows the probes after the status.
func (rep *statusReport) writeProbes(w io.Writer) {
	if rep.Probes == nil {
		return
	}
	fmt.Fprintln(w, "\nProbes (one real request each):")
	if len(rep.Probes) == 0 {
		fmt.Fprintln(w, "  no stored profile to probe")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  PROFILE\tMODEL\tRESULT\tSENT TO\n")
	for _, r := range rep.Probes {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.Profile, r.Model, probeOutcome(r), r.URL)
	}
	tw.Flush()
}
