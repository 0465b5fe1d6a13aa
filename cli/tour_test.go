package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The README's tour, run as written. TestReadmeTour runs every ```sh
// block between these two headings of README.md (the "With your real
// subscription" part after it needs a browser, a TTY or real providers
// and is not run).
const (
	tourStart = "## A short tour\n"
	tourEnd   = "### With your real subscription\n"
	// tourListen is the address the README uses (gateway.listen's
	// default); the test moves it to a free port so that a gateway the
	// developer runs does not answer the tour's requests.
	tourListen = "127.0.0.1:18789"
)

// tourKeys are what the test puts in the files the README asks for.
var tourKeys = map[string]string{
	"anthropic-key.txt": "sk-ant-api03-TOURdefaultAAAAbbbbCCCCddddEEEEffffGGGGhhhhIIIIjjjjKKKKllllMMMMnnnnOOOOppppQQQQrrrr1234",
	"work-key.txt":      "sk-ant-api03-TOURworkAAAAbbbbCCCCddddEEEEffffGGGGhhhhIIIIjjjjKKKKllllMMMMnnnnOOOOppppQQQQrrrrSS5678",
}

// tourCommand is one top-level command of the tour and what it printed.
type tourCommand struct {
	text string
	out  string
	at   float64 // when it started (bash's $EPOCHREALTIME)
}

// tourCheck is what one command of the tour must print. Every check must
// find its command: dropping a step from the README fails the test too.
type tourCheck struct {
	cmd  string   // the first command whose text starts with these words
	want []string // substrings of its output (stdout and stderr)
}

var tourChecks = []tourCheck{
	{"opensoul --version", []string{"opensoul ", "provider modules:", "anthropic"}},
	{"opensoul onboard", []string{"Generated a gateway token", "Saved anthropic:default (api_key sk-ant-api03-…1234)"}},
	{"opensoul models auth paste-token", []string{"Saved anthropic:work (api_key sk-ant-api03-…5678)"}},
	{"opensoul models status", []string{"anthropic — anthropic:default (+1 more)", "anthropic:work"}},
	{"opensoul models status --check", []string{"anthropic:default"}},
	{"opensoul models auth order get", []string{"main/anthropic: anthropic:work anthropic:default", "source: agent store", "serves anthropic/claude-sonnet-5 now: anthropic:work"}},
	{"opensoul models list", []string{"anthropic/claude-sonnet-5", "anthropic:work"}},
	{"opensoul config validate", []string{"opensoul.yaml: ok", "gateway.auth.token", "<redacted>"}},
	{"curl -fs --retry", []string{"ready"}},
	{"ask tour 'Hello'", []string{"X-Opensoul-Profile: anthropic:work", `"text":"hi from the fake upstream"`}},
	{"ask tour '/model sonnet@anthropic:default'", []string{"X-Opensoul-Chat: command", "anthropic/claude-sonnet-5", "pinned to anthropic:default"}},
	{"ask tour 'Hello again'", []string{"X-Opensoul-Profile: anthropic:default", `"text":"hi from the fake upstream"`}},
	{"ask tour '/model status'", []string{"X-Opensoul-Chat: command", "Credential: anthropic:default", "pinned by you"}},
	{"opensoul sessions list", []string{"tour", "anthropic:default", "user"}},
	{"opensoul doctor", []string{"[ok  ] credentials anthropic"}},
	{"opensoul doctor --fix", []string{"nothing to repair"}},
	{"kill %1", nil},
}

// TestReadmeTour runs README.md's tour verbatim with bash -e in the
// checkout, with an empty HOME (the key files the README asks for are the
// only thing in it), a fake Anthropic upstream (Messages wire format) the
// config points at through OPENSOUL_PROVIDERS__ANTHROPIC__BASEURL, and the
// gateway's default address moved to a free port. Every command must exit
// 0; tourChecks name what some of them must print, and the fake upstream
// must have seen the work key first and then the pinned default key.
func TestReadmeTour(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	for _, tool := range []string{"bash", "curl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README tour needs %s on PATH: %v", tool, err)
		}
	}
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := tourBlocks(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	cmds := splitTour(blocks)

	// The tour's `go build` runs after the shared build of the binary, so
	// it finds every package compiled in the build cache and only links
	// (run concurrently, both compiled the whole tree on a cold cache).
	opensoulBinary(t)
	up := newTourUpstream(t)
	home := t.TempDir()
	// The compiled provider modules, as after a user's first command:
	// compiling them cold took the tour's first command ~4 s (and as
	// much CPU); the binary's cold compile is TestBinaryEndToEnd's.
	seedModuleCache(t, home)
	for name, key := range tourKeys {
		os.WriteFile(filepath.Join(home, name), []byte(key+"\n"), 0o600)
	}
	addr := freeAddr(t)
	script := tourScript(cmds, addr)

	root, _ := filepath.Abs("..")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-e", "-c", script)
	sh.Dir = root
	sh.Env = tourEnv(t, home, addr, up.URL)
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The tour's background gateway shares the process group: stop it
	// whatever happens to the script.
	sh.Cancel = func() error { return syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }
	sh.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	sh.Stdout, sh.Stderr = &out, &out
	runErr := sh.Run()
	if sh.Process != nil {
		syscall.Kill(-sh.Process.Pid, syscall.SIGKILL)
	}
	ran, status := parseTourOutput(out.String(), cmds)
	if runErr != nil || status != 0 {
		last := "(before the first command)"
		if len(ran) > 0 {
			last = ran[len(ran)-1].text + "\n" + ran[len(ran)-1].out
		}
		log, _ := os.ReadFile(filepath.Join(home, "gateway.log"))
		t.Fatalf("the tour stopped (exit %d, %v) after %d of %d commands; the failing one:\n%s\ngateway.log:\n%s", status, runErr, len(ran), len(cmds), last, log)
	}
	for i, c := range ran { // shown with -v: the tour without a real key
		took := "     "
		if i+1 < len(ran) {
			took = fmt.Sprintf("%4.1fs", ran[i+1].at-c.at)
		}
		t.Logf("%s $ %s%s", took, c.text, c.out)
	}
	if len(ran) != len(cmds) {
		t.Fatalf("ran %d of %d commands:\n%s", len(ran), len(cmds), out.String())
	}
	for _, c := range tourChecks {
		i := tourFind(ran, c.cmd)
		if i < 0 {
			t.Errorf("the tour no longer runs %q", strings.TrimSpace(c.cmd))
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(ran[i].out, w) {
				t.Errorf("%s\nprinted:\n%s\nwant it to contain %q", ran[i].text, ran[i].out, w)
			}
		}
	}
	for _, c := range ran {
		for _, key := range tourKeys {
			if strings.Contains(c.out, key) {
				t.Errorf("%s printed a key", c.text)
			}
		}
	}
	want := []string{tourKeys["work-key.txt"], tourKeys["anthropic-key.txt"]}
	if got := up.seen(); !slices.Equal(got, want) {
		t.Errorf("upstream saw keys %v, want the work key then the pinned default key", redactKeys(got))
	}
}

// tourBlocks returns the ```sh blocks between tourStart and tourEnd.
func tourBlocks(readme string) ([]string, error) {
	a := strings.Index(readme, tourStart)
	b := strings.Index(readme, tourEnd)
	if a < 0 || b < a {
		return nil, fmt.Errorf("README.md has no %q followed by %q", strings.TrimSpace(tourStart), strings.TrimSpace(tourEnd))
	}
	re := regexp.MustCompile("(?ms)^```sh\n(.*?)^```$")
	var blocks []string
	for _, m := range re.FindAllStringSubmatch(readme[a:b], -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("the README tour has no sh blocks")
	}
	return blocks, nil
}

// splitTour cuts the blocks into top-level commands: a command starts on
// a line at column 0; lines after a trailing backslash, indented lines and
// lines closing a compound command (}, done, fi, esac) belong to it.
// Comment-only and empty lines are dropped.
func splitTour(blocks []string) []string {
	var cmds []string
	for _, blk := range blocks {
		cont := false
		for _, line := range strings.Split(blk, "\n") {
			trim := strings.TrimSpace(line)
			if trim == "" || strings.HasPrefix(trim, "#") {
				continue
			}
			closing := trim == "}" || trim == "done" || trim == "fi" || trim == "esac"
			if len(cmds) > 0 && (cont || line[0] == ' ' || line[0] == '\t' || closing) {
				cmds[len(cmds)-1] += line + "\n"
			} else {
				cmds = append(cmds, line+"\n")
			}
			cont = strings.HasSuffix(line, "\\")
		}
	}
	return cmds
}

// tourScript is the commands with a marker before each and the exit
// status at the end, the README's address replaced by addr.
func tourScript(cmds []string, addr string) string {
	var b strings.Builder
	b.WriteString("trap 'echo \"@@tour-exit $?\"' EXIT\n")
	for i, c := range cmds {
		fmt.Fprintf(&b, "echo \"@@tour-cmd %d $EPOCHREALTIME\"\n", i)
		b.WriteString(strings.ReplaceAll(c, tourListen, addr))
	}
	return b.String()
}

// parseTourOutput splits the output at the markers: the commands that
// started, each with what it printed, and the script's exit status.
func parseTourOutput(out string, cmds []string) ([]tourCommand, int) {
	var ran []tourCommand
	status := -1
	for _, line := range strings.SplitAfter(out, "\n") {
		switch {
		case strings.HasPrefix(line, "@@tour-cmd "):
			f := strings.Fields(line)
			i, _ := strconv.Atoi(f[1])
			at, _ := strconv.ParseFloat(f[len(f)-1], 64)
			if i >= 0 && i < len(cmds) {
				ran = append(ran, tourCommand{text: cmds[i], at: at})
			}
		case strings.HasPrefix(line, "@@tour-exit "):
			status, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "@@tour-exit ")))
		case len(ran) > 0:
			ran[len(ran)-1].out += line
		}
	}
	return ran, status
}

func tourFind(ran []tourCommand, prefix string) int {
	for i, c := range ran {
		rest, ok := strings.CutPrefix(c.text, prefix)
		if ok && (rest == "" || rest[0] == ' ' || rest[0] == '\n') {
			return i
		}
	}
	return -1
}

// tourEnv is a fresh user's environment: HOME and PATH, the Go caches of
// this machine (so that `go build` needs no network), the fake upstream.
func tourEnv(t *testing.T, home, addr, upstream string) []string {
	env := []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"OPENSOUL_PROVIDERS__ANTHROPIC__BASEURL=" + upstream,
		"OPENSOUL_GATEWAY__LISTEN=" + addr,
		"GOPROXY=off", // the build uses the module cache, never the network
	}
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOTOOLCHAIN"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", v, err)
		}
		env = append(env, v+"="+strings.TrimSpace(string(out)))
	}
	return env
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// tourUpstream is a fake Anthropic Messages API that records the key of
// every request.
type tourUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	keys []string
}

func newTourUpstream(t *testing.T) *tourUpstream {
	u := &tourUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/v1/messages" {
			http.Error(w, `{"type":"error","error":{"type":"not_found_error","message":"no such path"}}`, http.StatusNotFound)
			return
		}
		u.mu.Lock()
		u.keys = append(u.keys, r.Header.Get("x-api-key"))
		u.mu.Unlock()
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, `{"id":"msg_tour","type":"message","role":"assistant","model":"claude-sonnet-5","content":[{"type":"text","text":"hi from the fake upstream"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":5}}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *tourUpstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.keys...)
}

func redactKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		name := "other"
		for n, v := range tourKeys {
			if k == v {
				name = n
			}
		}
		out = append(out, name)
	}
	return out
}
