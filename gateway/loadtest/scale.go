package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// The -profiles modes: one gateway holding N keys, measured cached, with
// sessions, without, with churning facts and with the decision cache off.

// scaleKeyPrefix starts the keys of the -profiles gateway's profiles; the
// fake upstream accepts every one.
const scaleKeyPrefix = "sk-ant-api03-loadtest-scale-"

// newScaleGateway builds a gateway whose main agent holds n anthropic API
// keys and no explicit order; kind scale-nocache turns the decision cache
// off, scale-churn makes the clock move a second per reading.
func newScaleGateway(ctx context.Context, upstreamURL string, n int, kind string) (*gateway.Server, func(), error) {
	dir, err := os.MkdirTemp("", "opensoul-loadtest-")
	if err != nil {
		return nil, nil, err
	}
	st := store.New(dir)
	err = st.UpdateProfiles("main", func(p *store.Profiles) error {
		for i := range n {
			key := fmt.Sprintf("%s%06d-00000000000000000000000000", scaleKeyPrefix, i)
			p.Profiles[fmt.Sprintf("anthropic:p%06d", i)] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: key}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	opts := policy.Options{}
	if kind == "scale-nocache" {
		opts.CacheSize = -1
	}
	var now func() time.Time
	if kind == "scale-churn" {
		start := time.Now()
		var ticks atomic.Int64
		now = func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * 1001 * time.Millisecond) }
	}
	gw, err := wire(ctx, st, opts, true, gateway.Options{
		Now: now,
		Config: gateway.Config{
			Token:        gwToken,
			MaxBodyBytes: 32 << 20,
			Providers:    map[string]gateway.Upstream{"anthropic": {BaseURL: upstreamURL}},
		},
	})
	if err != nil {
		return nil, nil, err
	}
	return gw, func() { gw.Close(); os.RemoveAll(dir) }, nil
}

// runScale drives the bare proxy and an n-profile gateway (one process per
// cache setting) through each selected mode, alternating rounds.
func runScale(dur time.Duration, maxReq, n int, churn, nocache bool, only string) error {
	upURL, stopUp := listen(http.HandlerFunc(upstream))
	defer stopUp()
	f := &fleet{upstreamURL: upURL, args: []string{"-profiles", fmt.Sprint(n)}}
	defer f.stop()
	bare, err := f.start("bare")
	if err != nil {
		return err
	}
	gw, err := f.start("scale")
	if err != nil {
		return err
	}
	type mode struct {
		name     string
		flag     string // its name for -only
		gw       *server
		sessions int
	}
	modes := []mode{{"cached", "cached", gw, oneSession}, {"32 sessions", "sessions", gw, sessionPerConn}, {"no session", "nosession", gw, noSession}}
	if churn {
		ch, err := f.start("scale-churn")
		if err != nil {
			return err
		}
		modes = append(modes, mode{"churn", "churn", ch, sessionPerConn}, mode{"new session", "newsession", gw, sessionPerReq})
	}
	if nocache {
		off, err := f.start("scale-nocache")
		if err != nil {
			return err
		}
		modes = append(modes, mode{"cache off", "nocache", off, oneSession})
	}
	for _, name := range strings.Split(only, ",") {
		if name != "" && !slices.ContainsFunc(modes, func(m mode) bool { return m.flag == name }) {
			return fmt.Errorf("-only %s: no such mode in this run (churn and newsession need -churn, nocache needs -nocache)", name)
		}
	}
	const conns = 32
	fmt.Printf("OpenSoul gateway scale: %d profiles, %d CPUs, %d conns, json, %s per mode in %d alternating rounds, loopback only\n",
		n, runtime.NumCPU(), conns, dur, rounds)
	fmt.Printf("%-11s | %-28s | %-28s | %s\n", "mode", "bare proxy   req/s  cpu/req", "gateway      req/s  cpu/req", "gateway vs bare")
	for _, m := range modes {
		if only != "" && !slices.Contains(strings.Split(only, ","), m.flag) {
			continue
		}
		var bs, gs []result
		for range rounds {
			bs = append(bs, bare.measure(func() result { return drive(bare.url, keyGood, false, conns, dur/rounds, maxReq/rounds) }))
			gs = append(gs, m.gw.measure(func() result {
				return driveWith(m.gw.url+"/anthropic", gwToken, false, m.sessions, conns, dur/rounds, maxReq/rounds)
			}))
		}
		b, g := merge(bs), merge(gs)
		fmt.Printf("%-11s | %17.0f %9s | %17.0f %9s | %.2fx req/s, cpu %+dµs/req (%.1fx)\n", m.name,
			b.rps, us(b.cpuPer()), g.rps, us(g.cpuPer()), g.rps/b.rps,
			(g.cpuPer() - b.cpuPer()).Microseconds(), float64(g.cpuPer())/float64(max(b.cpuPer(), 1)))
		if b.errs+g.errs > 0 {
			fmt.Printf("           errors: bare %d, gateway %d\n", b.errs, g.errs)
		}
	}
	return nil
}
