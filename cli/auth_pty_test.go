//go:build linux

package cli

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/opensoul/opensoul/gateway/store"
)

// openTerminal opens a pseudo terminal for one test (skipping it where
// there is none) and collects everything the terminal shows the user (its
// echo) in screen. Both ends close when the test ends.
func openTerminal(t *testing.T) (ptmx, tty *os.File, screen *lockedBuffer) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo terminal here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	screen = &lockedBuffer{}
	go io.Copy(screen, ptmx)
	return ptmx, tty, screen
}

// TestSetupTokenOnATerminal drives setup-token through a real pseudo
// terminal: the token is typed with echo off (nothing of it comes back on
// the terminal), confirmed, checked and saved.
func TestSetupTokenOnATerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ptmx, tty, screen := openTerminal(t)

	var stdout, stderr lockedBuffer
	environ := []string{"OPENSOUL_STATE_DIR=" + e.state, "HOME=" + e.vars["HOME"]}
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"models", "auth", "setup-token", "--provider", "anthropic", "--profile-id", "anthropic:sub"}, tty, &stdout, &stderr, environ)
	}()

	// Type only once the prompt is up and the terminal no longer echoes.
	waitUntil(t, "the hidden-input prompt", func() bool {
		if !strings.Contains(stderr.String(), "input hidden") {
			return false
		}
		st, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		return err == nil && st.Lflag&unix.ECHO == 0
	})
	if _, err := ptmx.WriteString("  " + fixSetupToken + "\r"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the confirmation", func() bool { return strings.Contains(stderr.String(), "Save sk-ant-oat01-") })
	if _, err := ptmx.WriteString("y\r"); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("setup-token did not finish\nstderr: %s", stderr.String())
	}

	ps, err := store.New(e.state).LoadProfiles("main")
	if err != nil {
		t.Fatal(err)
	}
	if c := ps.Profiles["anthropic:sub"]; c.Type != store.TypeToken || c.Token != fixSetupToken {
		t.Fatalf("saved %+v, want the token (trimmed)", c)
	}
	time.Sleep(50 * time.Millisecond) // let the last echo reach the screen
	for name, text := range map[string]string{"terminal": screen.String(), "stdout": stdout.String(), "stderr": stderr.String()} {
		if strings.Contains(text, fixSetupToken[20:40]) {
			t.Errorf("the token shows on the %s:\n%s", name, text)
		}
	}
	if !strings.Contains(screen.String(), "y") {
		t.Errorf("the confirmation was not echoed (was the terminal left without echo?): %q", screen.String())
	}
	if st, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS); err != nil || st.Lflag&unix.ECHO == 0 {
		t.Errorf("echo is still off after the command (err %v)", err)
	}
}
