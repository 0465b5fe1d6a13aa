package monitor

import (
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
)

func TestPlanAlertsPure(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	p := Problem{Kind: gateway.ProblemExpired, Agent: "main", Subject: "anthropic:a", Severity: gateway.NeedsPerson}
	al, st := planAlerts(nil, []Problem{p}, t0)
	if len(al) != 1 || st[p.key()].LastAlert != t0 {
		t.Fatalf("%v %v", al, st)
	}
	if al, _ := planAlerts(st, []Problem{p}, t0.Add(59*time.Minute)); len(al) != 0 {
		t.Fatalf("again within the hour: %v", al)
	}
	if al, _ := planAlerts(st, []Problem{p}, t0.Add(time.Hour)); len(al) != 1 {
		t.Fatalf("not again after the hour: %v", al)
	}
	al, st = planAlerts(st, nil, t0.Add(2*time.Hour))
	if len(al) != 1 || al[0].Event != "resolved" || len(st) != 0 {
		t.Fatalf("resolved: %v %v", al, st)
	}
}

func TestDesktopCommand(t *testing.T) {
	t.Parallel()
	name, args, _ := desktopCommand("darwin", `a "quoted" \ text`)
	if name != "osascript" || args[1] != `display notification "a \"quoted\" \\ text" with title "OpenSoul credentials"` {
		t.Errorf("%s %q", name, args)
	}
	if name, _, _ := desktopCommand("linux", "x"); name != "notify-send" {
		t.Error(name)
	}
	if _, _, err := desktopCommand("plan9", "x"); err == nil {
		t.Error("plan9 accepted")
	}
}
