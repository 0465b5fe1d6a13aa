package scrub

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
)

// chunky returns its data in pieces of random size (some empty).
type chunky struct {
	r      *rand.Rand
	data   []byte
	closed bool
}

func (c *chunky) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), c.r.IntN(70))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunky) Close() error { c.closed = true; return nil }

// TestScrubReaderMatchesWhole: whatever pieces the upstream sends and the
// proxy asks for, the scrubbed stream is the whole body masked at once,
// with few secrets (searched) and many (indexed); the pooled buffers that
// readers lend each other leak nothing from one answer into the next.
func TestScrubReaderMatchesWhole(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{2, 40} {
		ss := &Set{}
		for i := range n {
			ss.Add(fmt.Sprintf("sk-ant-api03-%04d-%s", i, "abcdefghijklmnopqrstuvwxyz"[:r.IntN(20)]))
		}
		ss.Done()
		for i := range 500 {
			var body []byte
			for range r.IntN(8) {
				switch sec := ss.secrets[r.IntN(len(ss.secrets))]; r.IntN(3) {
				case 0:
					body = append(body, sec...)
				case 1:
					body = append(body, sec[:r.IntN(len(sec))]...)
				default:
					body = append(body, bytes.Repeat([]byte("data: {\"x\":1}\n"), r.IntN(3000))...)
				}
			}
			want := bytes.Clone(body)
			ss.Replace(want)
			src := &chunky{r: r, data: bytes.Clone(body)}
			sr := NewReader(src, ss)
			var got []byte
			for {
				p := make([]byte, 1+r.IntN(100))
				k, err := sr.Read(p)
				got = append(got, p[:k]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("secrets %d case %d: %v", n, i, err)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("secrets %d case %d: %d bytes in, got %d bytes unlike the whole body masked", n, i, len(body), len(got))
			}
			if err := sr.Close(); err != nil || !src.closed {
				t.Fatalf("Close: %v, source closed %v", err, src.closed)
			}
		}
	}
}

// TestScrubReaderReadAfterClose: a body read after Close answers an
// error, not a buffer handed back to the pool.
func TestScrubReaderReadAfterClose(t *testing.T) {
	ss := (&Set{}).Done()
	ss.Add("sk-ant-api03-closed-secret")
	src := &chunky{r: rand.New(rand.NewPCG(1, 2)), data: []byte("hello sk-ant-api03-closed-secret and more")}
	sr := NewReader(src, ss)
	p := make([]byte, 4)
	if _, err := sr.Read(p); err != nil {
		t.Fatal(err)
	}
	sr.Close()
	if n, err := sr.Read(p); n != 0 || err == nil {
		t.Fatalf("read after close: %d bytes, %v", n, err)
	}
}

// TestScrubHeadersMayHold: the header scrub skips only values that
// replace would leave unchanged, with few secrets (searched) and many
// (indexed), and still masks a secret inside a header value.
func TestScrubHeadersMayHold(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 40} {
		ss := &Set{}
		for i := range n {
			ss.Add(fmt.Sprintf("sk-ant-api03-%04d-%s", i, "abcdefghijklmnopqrstuvwxyz"[:r.IntN(20)]))
		}
		ss.Done()
		for i := range 3000 {
			var v []byte
			for range 1 + r.IntN(4) {
				switch sec := ss.secrets[r.IntN(len(ss.secrets))]; r.IntN(3) {
				case 0:
					v = append(v, sec...)
				case 1:
					v = append(v, sec[:r.IntN(len(sec))]...)
				default:
					v = append(v, "req_01ABCDEF; charset=utf-8"[:r.IntN(27)]...)
				}
			}
			masked := bytes.Clone(v)
			ss.Replace(masked)
			if !bytes.Equal(masked, v) && !ss.mayHold(string(v)) {
				t.Fatalf("secrets %d case %d: %q holds a secret but mayHold says no", n, i, v)
			}
			h := http.Header{"X-Echo": {string(v)}, "Content-Type": {"application/json"}}
			ss.Headers(h)
			if h.Get("X-Echo") != string(masked) || h.Get("Content-Type") != "application/json" {
				t.Fatalf("secrets %d case %d: header %q scrubbed to %q, want %q", n, i, v, h.Get("X-Echo"), masked)
			}
		}
	}
}
