package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

// quotaUpstream is an Anthropic upstream that counts each key's tokens
// down, reports them in anthropic-ratelimit-tokens-* headers, and answers
// 429 only when a key cannot pay for a request.
type quotaUpstream struct {
	*httptest.Server
	clock *clock
	mu    sync.Mutex
	limit map[string]int
	left  map[string]int
	name  map[string]string // key → profile name, for the log (never the key)
	log   []string          // "<key> ok <left after>" or "<key> 429"
	spent int
}

const costPerRequest = 50

func (q *quotaUpstream) serve(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("x-api-key")
	q.mu.Lock()
	defer q.mu.Unlock()
	q.clock.Advance(250 * time.Millisecond) // time passes: every answer is observed
	limit, known := q.limit[key]
	if !known {
		writeJSON(w, 401, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`, nil)
		return
	}
	h := map[string]string{"anthropic-ratelimit-tokens-limit": fmt.Sprint(limit)}
	if q.left[key] < costPerRequest {
		q.log = append(q.log, q.name[key]+" 429")
		h["anthropic-ratelimit-tokens-remaining"], h["retry-after"] = "0", "3600"
		writeJSON(w, 429, `{"type":"error","error":{"type":"rate_limit_error","message":"out of tokens"}}`, h)
		return
	}
	q.left[key] -= costPerRequest
	q.spent += costPerRequest
	q.log = append(q.log, fmt.Sprintf("%s ok %d", q.name[key], q.left[key]))
	h["anthropic-ratelimit-tokens-remaining"] = fmt.Sprint(q.left[key])
	writeJSON(w, 200, `{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":25,"output_tokens":25}}`, h)
}

// TestHeadroomRotatesBeforeThe429: three keys, one with a fifth of the
// others' quota. The built-in policy, seeing each key's headroom from its
// rate-limit headers, keeps the small key from running dry while the
// others have plenty: no key gets a 429 until the keys together are
// nearly spent, and none gets more than one. (Round robin without limits
// runs the small key into its 429 after about a dozen requests.)
func TestHeadroomRotatesBeforeThe429(t *testing.T) {
	t.Parallel()
	q := &quotaUpstream{
		limit: map[string]int{keyA: 200, keyB: 1000, envKey: 1000},
		left:  map[string]int{keyA: 200, keyB: 1000, envKey: 1000},
		name:  map[string]string{keyA: "small", keyB: "big1", envKey: "big2"},
	}
	q.Server = httptest.NewServer(http.HandlerFunc(q.serve))
	t.Cleanup(q.Close)
	f := newFixture(t, withConfig(func(c *gateway.Config) { c.Providers["anthropic"] = gateway.Upstream{BaseURL: q.URL} }))
	q.clock = f.clock
	f.profiles("main", map[string]store.Credential{
		"anthropic:small": anthropicKey(keyA),
		"anthropic:big1":  anthropicKey(keyB),
		"anthropic:big2":  anthropicKey(envKey),
	}, nil)
	const capacity = (200 + 1000 + 1000) / costPerRequest // 44 requests
	served := 0
	for range capacity + 6 {
		resp, _ := f.messages("m", nil)
		if resp.StatusCode == 200 {
			served++
		}
	}
	q.mu.Lock()
	log := append([]string(nil), q.log...)
	spentAtFirst429 := -1
	spent := 0
	per429 := map[string]int{}
	for _, l := range log {
		if strings.HasSuffix(l, " 429") {
			per429[strings.Fields(l)[0]]++
			if spentAtFirst429 < 0 {
				spentAtFirst429 = spent
			}
		} else {
			spent += costPerRequest
		}
	}
	q.mu.Unlock()
	if served != capacity {
		t.Errorf("served %d requests, want every one the quotas pay for (%d)", served, capacity)
	}
	for name, n := range per429 {
		if n > 1 {
			t.Errorf("%s got %d 429s, want at most one", name, n)
		}
	}
	// Every key but the last one standing is used until it is nearly
	// empty: the first 429 comes when at most two requests' worth per key
	// was left across the keys.
	if spentAtFirst429 >= 0 && spentAtFirst429 < (capacity-3*2)*costPerRequest {
		t.Errorf("the first 429 came after %d of %d tokens were spent: a key ran dry while others had headroom\n%s",
			spentAtFirst429, capacity*costPerRequest, strings.Join(log, "\n"))
	}
}
