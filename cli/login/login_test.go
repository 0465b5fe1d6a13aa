package login

import (
	"runtime"
	"testing"
)

// The CLIs' own login files: their config-dir variables first, then the
// home defaults.
func TestExternalPath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, source string
		environ      map[string]string
		want         string
	}{
		{"codex home", "codex", map[string]string{"HOME": "/h"}, "/h/.codex/auth.json"},
		{"CODEX_HOME", "codex", map[string]string{"HOME": "/h", "CODEX_HOME": "/c"}, "/c/auth.json"},
		{"claude home", "claude", map[string]string{"HOME": "/h", "CODEX_HOME": "/c"}, "/h/.claude/.credentials.json"},
		{"CLAUDE_CONFIG_DIR", "claude", map[string]string{"HOME": "/h", "CLAUDE_CONFIG_DIR": "/d"}, "/d/.credentials.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &Host{Environ: tc.environ}
			if got := h.externalPath(tc.source); got != tc.want {
				t.Errorf("externalPath(%s) = %s, want %s", tc.source, got, tc.want)
			}
		})
	}
}

// A sign-in pastes the redirect when no browser here could reach the
// loopback address: over SSH, or on Linux without a display.
func TestHasDisplay(t *testing.T) {
	t.Parallel()
	type tcase struct {
		name    string
		environ map[string]string
		want    bool
	}
	cases := []tcase{
		{"OPENSOUL_BROWSER wins over SSH", map[string]string{"OPENSOUL_BROWSER": "true", "SSH_TTY": "/dev/pts/1"}, true},
		{"SSH connection", map[string]string{"SSH_CONNECTION": "1.2.3.4 5 6.7.8.9 22", "DISPLAY": ":0"}, false},
		{"SSH tty", map[string]string{"SSH_TTY": "/dev/pts/1", "WAYLAND_DISPLAY": "wayland-0"}, false},
	}
	if runtime.GOOS != "darwin" && runtime.GOOS != "windows" {
		cases = append(cases, tcase{"X11", map[string]string{"DISPLAY": ":0"}, true}, tcase{"no display", map[string]string{}, false})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := (&Host{Environ: tc.environ}).hasDisplay(); got != tc.want {
				t.Errorf("hasDisplay(%v) = %v, want %v", tc.environ, got, tc.want)
			}
		})
	}
}
