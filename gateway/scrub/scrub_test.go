package scrub

import (
	"bytes"
	"io"
	"testing"
)

// chunked returns data in reads of the given sizes (cycled).
type chunked struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)])%64 + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunked) Close() error { return nil }

// FuzzScrubReader: however a body is cut into reads, the scrubbed stream
// equals the whole body scrubbed at once, keeps its length and holds no
// secret.
func FuzzScrubReader(f *testing.F) {
	const s1, s2 = "sk-ant-api03-FUZZSECRETaaaaaaaaaaaaaaaa", "osgw-FUZZTOKEN-0123456789"
	f.Add([]byte(`{"echo":"`+s1+`"}`), []byte{3, 7, 1})
	f.Add([]byte("data: "+s2+s1+"\n\n"+s1[:10]), []byte{1})
	f.Add([]byte("sk-ant-sk-ant-api03-FUZZ"+s1), []byte{5, 2})
	f.Fuzz(func(t *testing.T, body, sizes []byte) {
		ss := &Set{}
		ss.Add(s1)
		ss.Add(s2)
		want := bytes.Clone(body)
		ss.Replace(want)
		got, err := io.ReadAll(NewReader(&chunked{data: bytes.Clone(body), sizes: sizes}, ss))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || len(got) != len(body) {
			t.Fatalf("chunked scrub differs:\n got %q\nwant %q", got, want)
		}
		if bytes.Contains(got, []byte(s1)) || bytes.Contains(got, []byte(s2)) {
			t.Fatalf("a secret survived: %q", got)
		}
	})
}
