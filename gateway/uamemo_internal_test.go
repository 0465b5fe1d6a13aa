package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestUAMemo: a remembered user agent answers as a fresh match would, the
// Originator header is still read for a user agent no rule knows, and the
// memo stays bounded (long user agents are not kept at all).
func TestUAMemo(t *testing.T) {
	for range 3 { // the first call fills the memo, the others read it
		if n, v := IdentifyClient(http.Header{"User-Agent": {"claude-cli/2.1.332 (external, cli)"}}); n != ClientClaudeCode || v != "2.1.332" {
			t.Fatalf("claude-cli: %s %s", n, v)
		}
		if n, _ := IdentifyClient(http.Header{"User-Agent": {"Mozilla/5.0 (X11)"}, "Originator": {"codex_cli_rs"}}); n != ClientCodex {
			t.Fatalf("unknown user agent with a codex originator: %s", n)
		}
		if n, _ := IdentifyClient(http.Header{"User-Agent": {"Mozilla/5.0 (X11)"}}); n != ClientUnknown {
			t.Fatalf("unknown user agent without originator: %s", n)
		}
	}
	for i := range 3 * maxUAMemo {
		ua := fmt.Sprintf("claude-cli/1.0.%d", i)
		if id := clientOfUA(ua); id != matchUA(ua) || id.version != fmt.Sprintf("1.0.%d", i) {
			t.Fatalf("%s: %+v", ua, id)
		}
	}
	long := "claude-cli/9.9.9 " + strings.Repeat("x", maxMemoUA)
	if id := clientOfUA(long); !id.ok || id.version != "9.9.9" {
		t.Fatalf("long user agent: %+v", id)
	}
	held := 0
	uaMemo.m.Range(func(any, any) bool { held++; return true })
	if held > maxUAMemo {
		t.Errorf("memo holds %d user agents, bound %d", held, maxUAMemo)
	}
	if _, kept := uaMemo.m.Load(long); kept {
		t.Error("a user agent over maxMemoUA bytes was kept")
	}
}
