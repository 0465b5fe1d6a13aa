package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// loginShellEnv runs the user's login shell once and returns only the
// allowed variables it exports.
func loginShellEnv(environ map[string]string, timeoutMs int, allowed []string) (map[string]string, error) {
	shell := environ["SHELL"]
	if shell == "" {
		shell = "/bin/sh"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutMs)*time.Millisecond)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell, "-l", "-c", "env -0")
	cmd.Stdin = nil
	cmd.Stderr = io.Discard
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s -l timed out after %d ms (env.shellEnv.timeoutMs)", shell, timeoutMs)
	}
	if err != nil {
		return nil, fmt.Errorf("%s -l: %v", shell, err)
	}
	want := map[string]bool{}
	for _, k := range allowed {
		want[k] = true
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		for i, b := range data {
			if b == 0 {
				return i + 1, data[:i], nil
			}
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && want[k] {
			vars[k] = v
		}
	}
	return vars, nil
}
