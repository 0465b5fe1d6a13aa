package monitor

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

// NotifyTimeout bounds one notifier's delivery.
const NotifyTimeout = 10 * time.Second

// Notifier delivers one alert somewhere.
type Notifier struct {
	Name string
	Send func(ctx context.Context, al Alert) error
}

// alertText is an alert's human message: what, and how to fix it.
func alertText(al Alert) string {
	if al.Event == "resolved" {
		return "Resolved: " + al.Problem.Message
	}
	if al.Problem.Fix != "" {
		return al.Problem.Message + " — fix: " + al.Problem.Fix
	}
	return al.Problem.Message
}

// Ntfy POSTs the text to an ntfy-style topic URL
// (https://ntfy.sh/<topic> or a self-hosted one), with a title, a
// priority and tags as ntfy reads them from headers.
func Ntfy(client *http.Client, url string) Notifier {
	return Notifier{Name: "ntfy " + url, Send: func(ctx context.Context, al Alert) error {
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

// Webhook POSTs the alert as JSON: event, the problem's fields,
// a text and the time.
func Webhook(client *http.Client, url string, now time.Time) Notifier {
	return Notifier{Name: "webhook " + url, Send: func(ctx context.Context, al Alert) error {
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

// Exec runs a shell command per alert, the text on stdin and the
// fields in OPENSOUL_ALERT_* variables.
func Exec(command string) Notifier {
	return Notifier{Name: "exec " + command, Send: func(ctx context.Context, al Alert) error {
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

func Desktop(goos string) Notifier {
	return Notifier{Name: "desktop", Send: func(ctx context.Context, al Alert) error {
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

func Stdout(w io.Writer) Notifier {
	return Notifier{Name: "stdout", Send: func(_ context.Context, al Alert) error {
		_, err := fmt.Fprintf(w, "ALERT %s: %s\n", strings.ToUpper(al.Event), alertText(al))
		return err
	}}
}

// WithTimeout bounds each delivery of n.
func WithTimeout(n Notifier) Notifier {
	send := n.Send
	n.Send = func(ctx context.Context, al Alert) error {
		ctx, cancel := context.WithTimeout(ctx, NotifyTimeout)
		defer cancel()
		return send(ctx, al)
	}
	return n
}
