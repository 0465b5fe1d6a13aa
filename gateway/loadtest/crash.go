package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/gateway/usage/crashtest"
)

// runCrash is the crash proof of issue 16 with numbers: the built
// opensoul binary serves conns clients (Anthropic JSON and SSE, half in
// sessions) from a fake upstream that reports usage, and is SIGKILLed at
// a random point of its flush cycle, rounds times on one state dir; after
// each kill the usage store must open, pass SQLite's integrity check and
// hold exactly what was answered before its last committed cut
// (crashtest.Check), and the state files must load. "last interval" is
// the answers of the last flush interval before the kill: what the issue
// allows to be lost. A last start stops
// cleanly and must store every answer. Build first:
//
//	go build -o /tmp/opensoul . && go run ./gateway/loadtest -crash /tmp/opensoul [-rounds 5] [-conns 32] [-d 3s]
//
// -d is how long each round runs before the kill (plus a random part of
// a flush interval); the cli tests run the same (TestGatewayCrash).
func runCrash(bin string, rounds, conns int, d time.Duration) error {
	dir, err := os.MkdirTemp("", "opensoul-crash-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	state := filepath.Join(dir, "state")
	up := crashtest.NewUpstream()
	defer up.Close()
	keys := map[string]string{"anthropic:a": keyGood, "anthropic:b": keyBusy}
	err = store.New(state).UpdateProfiles(store.DefaultAgent, func(p *store.Profiles) error {
		for id, k := range keys {
			p.Profiles[id] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: k}
		}
		return nil
	})
	if err != nil {
		return err
	}
	cfg := crashtest.Config(up.URL) + "gateway:\n  auth:\n    token: " + gwToken + "\n"
	if err := os.WriteFile(filepath.Join(state, "opensoul.yaml"), []byte(cfg), 0o600); err != nil {
		return err
	}
	env := []string{"OPENSOUL_STATE_DIR=" + state, "HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	db := filepath.Join(state, "usage.db")

	// A first start compiles the provider modules into HOME's cache,
	// which on a busy machine takes longer than a round.
	if err := cleanStop("warm-up", bin, env, db, up, nil); err != nil {
		return fmt.Errorf("warming up: %w", err)
	}
	fmt.Printf("SIGKILL under load: %d clients, %d rounds of %v + a random part of the %v flush interval (wall clock, loopback)\n",
		conns, rounds, d, usage.DefaultFlushInterval)
	fmt.Printf("%-5s | %8s | %8s | %7s | %8s | %6s | %13s | %15s | %s\n", "round", "answered", "req/s", "batches", "stored", "lost",
		"last interval", "cut before kill", "check")
	before, err := crashtest.Stored(db)
	if err != nil {
		return err
	}
	var failed error
	for round := 1; round <= rounds; round++ {
		began := time.Now()
		g, err := crashtest.Start(bin, env)
		if err != nil {
			return err
		}
		serving := time.Now()
		load := crashtest.Load(g.Addr, gwToken, conns)
		time.Sleep(d + time.Duration(rand.Int64N(int64(usage.DefaultFlushInterval))))
		killed := time.Now()
		g.Kill()
		clients := load()
		after, err := crashtest.Stored(db)
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		r, err := crashtest.Check(g.Flushes(), crashtest.Delta(after, before), clients, up.Finished(began), killed)
		err = errors.Join(err, crashtest.StateFiles(state, keys))
		check := "ok"
		if err != nil {
			check, failed = err.Error(), errors.Join(failed, fmt.Errorf("round %d: %w", round, err))
		}
		fmt.Printf("%-5d | %8d | %8.0f | %7d | %8d | %6d | %13d | %15v | %s\n", round, r.Answered, float64(r.Answered)/killed.Sub(serving).Seconds(),
			r.Batches, r.Stored, r.Lost(), r.LastInterval, r.CutAgo.Round(time.Millisecond), check)
		before = after
	}
	return errors.Join(failed, cleanStop("last start", bin, env, db, up, before))
}

// cleanStop starts the gateway on the state dir, serves until a few
// answers came and a second passed, and stops it with SIGINT: every answer
// must be stored. With before nil it only warms up.
func cleanStop(what, bin string, env []string, db string, up *crashtest.Upstream, before map[string]usage.Row) error {
	if before == nil {
		var err error
		if before, err = crashtest.Stored(db); err != nil {
			return err
		}
	}
	began := time.Now()
	g, err := crashtest.Start(bin, env)
	if err != nil {
		return err
	}
	load := crashtest.Load(g.Addr, gwToken, 8)
	for deadline := time.Now().Add(2 * time.Minute); len(up.Finished(began)) < len(crashtest.Models) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	g.Cmd.Process.Signal(syscall.SIGINT)
	if err := g.Cmd.Wait(); err != nil {
		return fmt.Errorf("the clean stop: %v", err)
	}
	clients := load()
	after, err := crashtest.Stored(db)
	if err != nil {
		return err
	}
	final := crashtest.Delta(after, before)
	var errs []error
	var stored, answered int64
	for _, m := range crashtest.Models {
		stored += final[m].Requests
		answered += int64(len(up.Finished(began)[m]))
		if final[m].Requests != int64(len(clients.Answers[m])) {
			errs = append(errs, fmt.Errorf("%s, clean stop, %s: stored %d, clients got %d", what, m, final[m].Requests, len(clients.Answers[m])))
		}
		errs = append(errs, crashtest.WholeAnswers(m, final[m]))
	}
	fmt.Printf("%s, clean stop: %d answered, %d stored\n", what, answered, stored)
	return errors.Join(errs...)
}
