package scrub

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestScrubIndexMatchesSearch: with many secrets the set searches by
// index; it must mask and hold back exactly what searching for each secret
// in turn does, on bodies that hold secrets whole, cut at either end, next
// to each other and as prefixes of one another.
func TestScrubIndexMatchesSearch(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	indexed := &Set{}
	for i := range 40 {
		indexed.Add(fmt.Sprintf("sk-ant-api03-%04d-%s", i, "abcdefghijklmnopqrstuvwxyz"[:r.IntN(20)]))
	}
	indexed.Add("sk-ant-api03-0001-") // a prefix of others
	indexed.Done()
	if indexed.index == nil {
		t.Fatal("40 secrets are not indexed; the test proves nothing")
	}
	plain := &Set{secrets: indexed.secrets, masks: indexed.masks, longest: indexed.longest}
	for i := range 2000 {
		var b []byte
		for range 1 + r.IntN(5) {
			switch sec := indexed.secrets[r.IntN(len(indexed.secrets))]; r.IntN(4) {
			case 0:
				b = append(b, sec...)
			case 1:
				b = append(b, sec[:r.IntN(len(sec))]...)
			case 2:
				b = append(b, sec[r.IntN(len(sec)):]...)
			default:
				b = append(b, "text {\"error\": "[:r.IntN(15)]...)
			}
		}
		got, want := bytes.Clone(b), bytes.Clone(b)
		indexed.Replace(got)
		plain.Replace(want)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: %q\nindexed %q\nsearch  %q", i, b, got, want)
		}
		if g, w := indexed.holdBack(b), plain.holdBack(b); g != w {
			t.Fatalf("case %d: %q: indexed holds back %d, search %d", i, b, g, w)
		}
	}
}
