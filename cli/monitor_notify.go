package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/opensoul/opensoul/gateway"
)

// notifyTimeout bounds one notifier's delivery.
const notifyTimeout = 10 * time.Second

// notifier delivers one alert somewhere.
type notifier struct {
	name string
	send func(ctx context.Context, al alert) error
}

// alertText is an alert's human message: what, and how to fix it.
func alertText(al alert) string {
	if al.Event == "resolved" {
		return "Resolved: " + al.Problem.Message
	}
	if al.Problem.Fix != "" {
		return al.Problem.Message + " — fix: " + al.Problem.Fix
	}
	return al.Problem.Message
}

// ntfyNotifier POSTs the text to an ntfy-style topic URL
// (https://ntfy.sh/<topic> or a self-hosted one), with a title, a
// priority and tags as ntfy reads them from headers.
func ntfyNotifier(client *http.Client, url string) notifier {
	return notifier{name: "ntfy " + url, send: func(ctx context.Context, al alert) error {
		req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(alertText(al)))
		if err != nil {
			return err
		}
		req.Header.Set("Title", "OpenSoul credentials")
		if al.Event == "resolved" {
			req.Header.Set("Priority", "default")
			req.Header.Set("Tags", "white_check_mark")
		} else {
			req.Header.Set("Priority", map[bool]string{true: "high", false: "default"}[al.Problem.Severity == gateway.NeedsPerson])
			req.Header.Set("Tags", "warning")
		}
		return post(client, req)
	}}
}

// webhookNotifier POSTs the alert as JSON: event, the problem's fields,
// a text and the time.
func webhookNotifier(client *http.Client, url string, now time.Time) notifier {
	return notifier{name: "webhook " + url, send: func(ctx context.Context, al alert) error {
		body, err := json.Marshal(map[string]any{"event": al.Event, "problem": al.Problem, "text": alertText(al), "at": now.UTC().Format(time.RFC3339)})
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		return post(client, req)
	}}
}

func post(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

// execNotifier runs a shell command per alert, the text on stdin and the
// fields in OPENSOUL_ALERT_* variables.
func execNotifier(command string) notifier {
	return notifier{name: "exec " + command, send: func(ctx context.Context, al alert) error {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
		cmd.Stdin = strings.NewReader(alertText(al) + "\n")
		cmd.Env = append(os.Environ(),
			"OPENSOUL_ALERT_EVENT="+al.Event,
			"OPENSOUL_ALERT_KIND="+al.Problem.Kind,
			"OPENSOUL_ALERT_AGENT="+al.Problem.Agent,
			"OPENSOUL_ALERT_SUBJECT="+al.Problem.Subject,
			"OPENSOUL_ALERT_TEXT="+alertText(al),
		)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}}
}

// desktopCommand is the desktop notification for goos: notify-send on
// Linux, osascript on macOS.
func desktopCommand(goos, text string) (name string, args []string, err error) {
	switch goos {
	case "linux":
		return "notify-send", []string{"--app-name=OpenSoul", "OpenSoul credentials", text}, nil
	case "darwin":
		q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(text)
		return "osascript", []string{"-e", `display notification "` + q + `" with title "OpenSoul credentials"`}, nil
	}
	return "", nil, fmt.Errorf("--desktop knows notify-send (Linux) and osascript (macOS), not %s", goos)
}

func desktopNotifier(goos string) notifier {
	return notifier{name: "desktop", send: func(ctx context.Context, al alert) error {
		name, args, err := desktopCommand(goos, alertText(al))
		if err != nil {
			return err
		}
		if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, bytes.TrimSpace(out))
		}
		return nil
	}}
}

func stdoutNotifier(w io.Writer) notifier {
	return notifier{name: "stdout", send: func(_ context.Context, al alert) error {
		_, err := fmt.Fprintf(w, "ALERT %s: %s\n", strings.ToUpper(al.Event), alertText(al))
		return err
	}}
}

// withTimeout bounds each delivery of n.
func withTimeout(n notifier) notifier {
	send := n.send
	n.send = func(ctx context.Context, al alert) error {
		ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
		defer cancel()
		return send(ctx, al)
	}
	return n
}
