package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type result struct {
	cpu      time.Duration // the server's CPU time for these requests
	self     time.Duration // this process's (load driver and fake upstream) CPU time for them, when driveOn measured it
	n        int
	errs     int
	secs     float64
	lats     []time.Duration
	rps      float64
	p50, p99 time.Duration
}

// drive runs conns closed-loop clients against url for dur (or max
// requests) and reports throughput and latency (TTFB when streaming).
func drive(url, key string, stream bool, conns int, dur time.Duration, max int) result {
	return driveWith(url, key, stream, noSession, conns, dur, max)
}

// Session headers driveWith sends.
const (
	noSession      = iota
	oneSession     // every request names the same session
	sessionPerConn // each connection names a session of its own
	sessionPerReq  // every request names a new session (a new decision key only with a user policy)
)

var newSessions atomic.Int64

// driveWith is drive with the given session headers (x-opensoul-session).
func driveWith(url, key string, stream bool, sessions, conns int, dur time.Duration, max int) result {
	return driveTimed(url, key, stream, sessions, conns, dur, max, nil)
}

// driveOn is drive against s measuring s's CPU time over the timed part
// only: the warm-up's requests (new connections, not counted in n) are
// left out of the CPU per request.
func (s *server) driveOn(url, key string, conns int, dur time.Duration) result {
	var cpu, self time.Duration
	r := driveTimed(url, key, false, noSession, conns, dur, math.MaxInt, func(start bool) {
		if start {
			cpu, self = s.cpu(), selfCPU()
		} else {
			cpu, self = s.cpu()-cpu, selfCPU()-self
		}
	})
	r.cpu, r.self = cpu, self
	return r
}

// selfCPU is this process's user+system time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// driveTimed is driveWith calling timed(true) after the warm-up, just
// before the timed load starts, and timed(false) just after it ends.
func driveTimed(url, key string, stream bool, sessions, conns int, dur time.Duration, max int, timed func(start bool)) result {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns * 2, DisableCompression: true}}
	defer client.CloseIdleConnections()
	body := reqBody
	if stream {
		body = streamRq
	}
	one := func(conn int) (time.Duration, bool) {
		req, _ := http.NewRequest("POST", url+"/v1/messages", strings.NewReader(body))
		req.Header.Set("x-api-key", key)
		req.Header.Set("content-type", "application/json")
		req.Header.Set("anthropic-version", "2023-06-01")
		switch sessions {
		case oneSession:
			req.Header.Set("x-opensoul-session", "load")
		case sessionPerConn:
			req.Header.Set("x-opensoul-session", fmt.Sprintf("load-%d", conn))
		case sessionPerReq:
			req.Header.Set("x-opensoul-session", fmt.Sprintf("new-%d", newSessions.Add(1)))
		}
		if stream {
			req.Header.Set("accept", "text/event-stream")
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, false
		}
		var buf [1]byte
		var lat time.Duration
		if stream {
			io.ReadFull(resp.Body, buf[:])
			lat = time.Since(start)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if !stream {
			lat = time.Since(start)
		}
		return lat, resp.StatusCode == 200
	}
	// warm up connections and caches
	for i := range conns * 4 {
		one(i % conns)
	}
	var count, errs atomic.Int64
	lats := make([][]time.Duration, conns)
	if timed != nil {
		timed(true)
	}
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) && count.Add(1) <= int64(max) {
				lat, ok := one(c)
				if !ok {
					errs.Add(1)
				}
				lats[c] = append(lats[c], lat)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if timed != nil {
		timed(false)
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	r := result{n: len(all), errs: int(errs.Load()), secs: elapsed.Seconds(), lats: all}
	if len(all) > 0 {
		r.rps = float64(len(all)) / elapsed.Seconds()
		r.p50 = all[len(all)/2]
		r.p99 = all[len(all)*99/100]
	}
	return r
}

const rounds = 3

// pair drives bare and gateway alternately for rounds, merging the
// latencies of each and measuring each server's CPU time per request,
// which a busy shared machine disturbs far less than latency.
func pair(bare, gw *server, stream bool, conns int, dur time.Duration, max int) (b, g result) {
	var bs, gs []result
	for range rounds {
		bs = append(bs, bare.measure(func() result { return drive(bare.url, keyGood, stream, conns, dur/rounds, max/rounds) }))
		gs = append(gs, gw.measure(func() result { return drive(gw.url+"/anthropic", gwToken, stream, conns, dur/rounds, max/rounds) }))
	}
	return merge(bs), merge(gs)
}

// merge combines rounds: requests add up over the summed time; the
// percentiles are over every latency.
func merge(rs []result) result {
	var m result
	var secs float64
	for _, r := range rs {
		m.n += r.n
		m.errs += r.errs
		m.cpu += r.cpu
		m.self += r.self
		secs += r.secs
		m.lats = append(m.lats, r.lats...)
	}
	m.secs = secs
	slices.Sort(m.lats)
	if len(m.lats) > 0 {
		m.rps = float64(m.n) / secs
		m.p50 = m.lats[len(m.lats)/2]
		m.p99 = m.lats[len(m.lats)*99/100]
	}
	return m
}

func (r result) cpuPer() time.Duration {
	if r.n == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.n)
}

// allPer is the CPU time per request of the server and this process (the
// load driver and the fake upstream) together.
func (r result) allPer() time.Duration {
	if r.n == 0 {
		return 0
	}
	return (r.cpu + r.self) / time.Duration(r.n)
}

func us(d time.Duration) string { return fmt.Sprintf("%dµs", d.Microseconds()) }
