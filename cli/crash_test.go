package cli

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/usage"
	"github.com/opensoul/opensoul/gateway/usage/crashtest"
)

const crashKeyB = "sk-ant-api03-CRASHsecondKeyAAAAbbbbCCCCddddEEEEffffGGGGhhhhIIIIjjjjKKKKllllMMMMnnnnOOOOppppQQQQrrrrSSSS9876"

// TestGatewayCrash is issue 16's crash proof with the real binary: 16
// clients (Anthropic JSON and SSE through the real anthropic module, half
// in sessions) against an upstream that reports usage; the gateway is
// SIGKILLed at a random point of its flush cycle and started again on the
// same state dir, three times (OPENSOUL_CRASH_ROUNDS for more). Each time
// the usage store opens, passes SQLite's integrity check and holds exactly
// what was answered before its last committed cut (crashtest.Check says
// how that is exact); the profiles, state and sessions load whole. A last
// start stops cleanly and stores every answer. `go run ./gateway/loadtest
// -crash BIN` runs the same with more clients and prints the numbers.
func TestGatewayCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it under load")
	}
	t.Parallel()
	keys := map[string]string{"anthropic:a": fixAnthropicKey, "anthropic:b": crashKeyB}
	bin, e, up, env := crashSetup(t, keys)
	start := func() *crashtest.Gateway {
		g, err := crashtest.Start(bin, env)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Kill)
		return g
	}
	stored := func() map[string]usage.Row {
		rows, err := crashtest.Stored(usagePath(e.state))
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}

	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("OPENSOUL_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	before := stored()
	for round := 1; round <= rounds; round++ {
		began := time.Now()
		g := start()
		load := crashtest.Load(g.Addr, fixGatewayToken, 16)
		// Kill at a random point in the flush cycle, once the store has
		// committed a batch of this run.
		if err := g.WaitFlushes(1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.Int64N(int64(usage.DefaultFlushInterval))))
		killed := time.Now()
		g.Kill()
		clients := load()
		after := stored()
		r, err := crashtest.Check(g.Flushes(), crashtest.Delta(after, before), clients, up.Finished(began), killed)
		if err != nil {
			t.Errorf("round %d: %v", round, err)
		}
		if err := crashtest.StateFiles(e.state, keys); err != nil {
			t.Errorf("round %d: after the kill: %v", round, err)
		}
		t.Logf("round %d: %d answered, %d stored in %d batches, lost %d (all after the last cut, %v before the kill; %d answered in the last flush interval, %v)",
			round, r.Answered, r.Stored, r.Batches, r.Lost(), r.CutAgo.Round(time.Millisecond), r.LastInterval, usage.DefaultFlushInterval)
		before = after
	}

	// A last start on the same state dir: the store opens without a
	// warning, serves, and a clean stop writes every answer.
	began := time.Now()
	g := start()
	load := crashtest.Load(g.Addr, fixGatewayToken, 16)
	if err := g.WaitFlushes(1); err != nil {
		t.Fatal(err)
	}
	g.Cmd.Process.Signal(syscall.SIGINT)
	if err := g.Cmd.Wait(); err != nil {
		t.Errorf("the gateway's clean stop: %v\n%s", err, g.Log())
	}
	clients := load()
	final := crashtest.Delta(stored(), before)
	for _, m := range crashtest.Models {
		answered := up.Finished(began)[m]
		if final[m].Requests != int64(len(answered)) || final[m].Requests != int64(len(clients.Answers[m])) {
			t.Errorf("after a clean stop %s: stored %d, upstream answered %d, clients got %d", m, final[m].Requests, len(answered), len(clients.Answers[m]))
		}
		if err := crashtest.WholeAnswers(m, final[m]); err != nil {
			t.Error(err)
		}
	}
	for _, bad := range []string{`"level":"WARN"`, `"level":"ERROR"`} {
		if strings.Contains(g.Log(), bad) {
			t.Errorf("the restarted gateway logged a problem:\n%s", g.Log())
		}
	}
	if err := crashtest.StateFiles(e.state, keys); err != nil {
		t.Error(err)
	}
}

// TestGatewayStopWhileCompiling: a gateway stopped before its provider
// modules are compiled (SIGINT right after its banner, with an empty
// module cache so the compile takes seconds) stops cleanly and logs no
// error: an unfinished compile says nothing about the module. It used to
// log "provider module unusable … context canceled" at ERROR.
func TestGatewayStopWhileCompiling(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	bin, _, _, env := crashSetup(t, map[string]string{"anthropic:a": fixAnthropicKey})
	g, err := crashtest.Start(bin, append(env, "XDG_CACHE_HOME="+t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Kill)
	g.Cmd.Process.Signal(syscall.SIGINT)
	if err := g.Cmd.Wait(); err != nil {
		t.Fatalf("stopping during the compile: %v\n%s", err, g.Log())
	}
	for _, bad := range []string{`"level":"WARN"`, `"level":"ERROR"`} {
		if strings.Contains(g.Log(), bad) {
			t.Errorf("a gateway stopped while compiling logged a problem:\n%s", g.Log())
		}
	}
}

// crashSetup builds the binary and a state dir whose gateway serves keys
// (profile id → key) from the crash test's upstream, and gives the
// environment to start it with.
func crashSetup(t *testing.T, keys map[string]string) (bin string, e *env, up *crashtest.Upstream, environ []string) {
	t.Helper()
	bin = opensoulBinary(t)
	e = newEnv(t)
	up = crashtest.NewUpstream()
	t.Cleanup(up.Close)
	e.writeFile("opensoul.yaml", crashtest.Config(up.URL))
	e.writeFile(".env", "OPENSOUL_GATEWAY_TOKEN="+fixGatewayToken+"\n")
	for id, key := range keys {
		e.ok(key+"\n", "models", "auth", "paste-token", "--provider", "anthropic", "--profile-id", id)
	}
	environ = []string{"HOME=" + e.vars["HOME"], "PATH=" + os.Getenv("PATH"), "OPENSOUL_STATE_DIR=" + e.state}
	return bin, e, up, environ
}
