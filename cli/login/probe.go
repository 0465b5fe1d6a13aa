package login

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

// ProbeTarget is one provider's profiles as models status lists them,
// with the model a probe asks.
type ProbeTarget struct {
	Provider string
	Model    string // "": the provider has no model to ask (agents.defaults.model)
	Profiles []string
}

// Probe is `models status --probe`: one real, smallest request per stored
// profile of targets (of provider only, when set), each presented as the
// gateway presents it, at most timeout each. Progress goes to Stderr when
// there is more than one. A profile without a model to ask gets an error
// result, after the others.
func (h *Host) Probe(ctx context.Context, agent string, targets []ProbeTarget, provider string, timeout time.Duration) ([]gateway.ProbeResult, error) {
	snap, err := gateway.LoadSnapshot(h.Store, agent)
	if err != nil {
		return nil, err
	}
	p, err := h.Prober(ctx)
	if err != nil {
		return nil, err
	}
	var jobs []gateway.ProbeRequest
	var noModel []gateway.ProbeResult
	for _, ps := range targets {
		if provider != "" && ps.Provider != provider {
			continue
		}
		for _, id := range ps.Profiles {
			c, stored := snap.Profiles[id]
			switch {
			case !stored:
				continue // an environment or config key: not a profile
			case ps.Model == "":
				noModel = append(noModel, gateway.ProbeResult{Profile: id, Provider: ps.Provider,
					Error: fmt.Sprintf("no model of %s to ask (agents.defaults.model)", ps.Provider)})
				continue
			}
			jobs = append(jobs, gateway.ProbeRequest{Agent: agent, Profile: id, Cred: c, Model: ps.Model, Timeout: timeout})
		}
	}
	if provider != "" && len(jobs)+len(noModel) == 0 {
		return nil, &UsageError{fmt.Sprintf("no profile of provider %s to probe", provider)}
	}
	return append(probeAll(ctx, p, jobs, h.Stderr), noModel...), nil
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

// ProbesFailed lists the probes that did not answer ok, for --check.
func ProbesFailed(probes []gateway.ProbeResult) []string {
	var out []string
	for _, r := range probes {
		if !r.OK {
			out = append(out, fmt.Sprintf("probe %s: %s", r.Profile, probeOutcome(r)))
		}
	}
	return out
}

// WriteProbes shows the probes after the status; nil: no --probe.
func WriteProbes(w io.Writer, probes []gateway.ProbeResult) {
	if probes == nil {
		return
	}
	fmt.Fprintln(w, "\nProbes (one real request each):")
	if len(probes) == 0 {
		fmt.Fprintln(w, "  no stored profile to probe")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  PROFILE\tMODEL\tRESULT\tSENT TO\n")
	for _, r := range probes {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.Profile, r.Model, probeOutcome(r), r.URL)
	}
	tw.Flush()
}
