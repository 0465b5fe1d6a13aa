package wasm

import (
	"fmt"
	"testing"
)

// headersSum answers what cacheKey does, on a miss and on a hit, for
// credentials that differ in any one field, and keeps doing so once the
// memo has been filled past its bound.
func TestHeadersSumIsCacheKey(t *testing.T) {
	r := &Registry{headerSums: newResultCache[headersKey, [32]byte](16)}
	var reqs []struct {
		provider string
		req      HeadersRequest
	}
	for i := range 40 {
		for _, p := range []string{"anthropic", "openai"} {
			base := HeadersRequest{Type: "api_key", Secret: fmt.Sprintf("sk-%d", i)}
			acct := base
			acct.AccountID = "acct"
			typ := base
			typ.Type = "oauth"
			for _, req := range []HeadersRequest{base, acct, typ} {
				reqs = append(reqs, struct {
					provider string
					req      HeadersRequest
				}{p, req})
			}
		}
	}
	seen := map[[32]byte]string{}
	for round := range 3 {
		for _, c := range reqs {
			want := cacheKey(OpHeaders, c.provider, c.req.Type+"\x00"+c.req.AccountID, c.req.Secret, nil)
			if got := r.headersSum(c.provider, c.req); got != want {
				t.Fatalf("round %d: headersSum(%s, %+v) is not its cacheKey", round, c.provider, c.req)
			}
			name := fmt.Sprint(c.provider, c.req)
			if other, ok := seen[want]; ok && other != name {
				t.Fatalf("%s and %s share a key", name, other)
			}
			seen[want] = name
		}
	}
	if n := len(r.headerSums.m); n > 16 {
		t.Fatalf("the memo holds %d entries, bound 16", n)
	}
}
