package usage

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cases are real-shaped answers of each wire API with the usage their
// provider reported (text that merely mentions "usage", escaped, is in
// each fixture and must not count).
var cases = []struct {
	name, file, api string
	want            Usage
}{
	{"anthropic json", "anthropic.json", APIAnthropicMessages, Usage{Input: 2095, Output: 503, CacheRead: 4000, CacheWrite: 120, Seen: true}},
	{"anthropic sse", "anthropic.sse", APIAnthropicMessages, Usage{Input: 472, Output: 42, CacheRead: 1800, Seen: true}},
	{"chat json", "chat.json", APIOpenAICompletions, Usage{Input: 19, Output: 10, Seen: true}},
	{"chat sse", "chat.sse", APIOpenAICompletions, Usage{Input: 1200 - 1024, Output: 88, CacheRead: 1024, Seen: true}},
	{"responses json", "responses.json", APIOpenAIResponses, Usage{Input: 3000 - 2048, Output: 310, CacheRead: 2048, Seen: true}},
	{"responses sse", "responses.sse", APIOpenAIResponses, Usage{Input: 3000 - 2048, Output: 310, CacheRead: 2048, Seen: true}},
	{"chat sse, api unknown", "chat.sse", "", Usage{Input: 1200 - 1024, Output: 88, CacheRead: 1024, Seen: true}},
	{"responses sse, api unknown", "responses.sse", "", Usage{Input: 3000 - 2048, Output: 310, CacheRead: 2048, Seen: true}},
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMeterAnyChunking feeds every fixture through the Meter in reads of
// every size from 1 byte up: the usage must not depend on where reads
// split the body, and the bytes must pass unchanged.
func TestMeterAnyChunking(t *testing.T) {
	t.Parallel()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := fixture(t, tc.file)
			for size := 1; size <= len(body); size++ {
				var got Usage
				calls := 0
				m := NewMeter(io.NopCloser(&chunked{b: body, n: size}), tc.api, func(u Usage) { got = u; calls++ })
				out, err := io.ReadAll(m)
				if err != nil {
					t.Fatal(err)
				}
				m.Close()
				if !bytes.Equal(out, body) {
					t.Fatalf("reads of %d: body changed", size)
				}
				if calls != 1 {
					t.Fatalf("reads of %d: done called %d times, want 1", size, calls)
				}
				if got != tc.want {
					t.Fatalf("reads of %d: usage %+v, want %+v", size, got, tc.want)
				}
			}
		})
	}
}

// TestMeterCut closes the body part way through, as the proxy does when
// the client goes away: what passed is reported, once.
func TestMeterCut(t *testing.T) {
	t.Parallel()
	body := fixture(t, "anthropic.sse")
	firstDelta := bytes.Index(body, []byte("event: message_delta"))
	for _, tc := range []struct {
		name string
		cut  int
		want Usage
	}{
		{"before any usage", 10, Usage{}},
		{"after message_start", firstDelta, Usage{Input: 472, Output: 1, CacheRead: 1800, Seen: true}},
		{"after the first delta", bytes.LastIndex(body, []byte("event: message_delta")), Usage{Input: 472, Output: 15, CacheRead: 1800, Seen: true}},
		{"inside the last usage object", bytes.LastIndex(body, []byte(`"output_tokens":42`)), Usage{Input: 472, Output: 15, CacheRead: 1800, Seen: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []Usage
			m := NewMeter(io.NopCloser(bytes.NewReader(body)), APIAnthropicMessages, func(u Usage) { got = append(got, u) })
			if _, err := io.ReadFull(m, make([]byte, tc.cut)); err != nil {
				t.Fatal(err)
			}
			m.Close()
			m.Close()
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("reported %+v, want one %+v", got, tc.want)
			}
		})
	}
}

func TestMeterNotUsage(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"type":"usage","x":{"input_tokens":5}}`,                       // a string value, not a key
		`{"text":"say \"usage\":{\"input_tokens\":5}"}`,                 // escaped, inside a string
		`{"usage":null,"x":{"input_tokens":5}}`,                         // null usage
		`{"usage":{"requests":3}}`,                                      // an object without token counts
		`{"usage":{"input_tokens":"many"}}`,                             // wrong types
		`{"usage":{"input_tokens":` + strings.Repeat(" ", 9000) + `5}}`, // too long to be usage
	} {
		m := NewMeter(io.NopCloser(strings.NewReader(body)), "", nil)
		io.Copy(io.Discard, m)
		if u := m.Usage(); u != (Usage{}) {
			t.Errorf("%s: usage %+v, want none", body, u)
		}
	}
}

// TestMeterAsWriter: the same scan works as the writing end of a tee.
func TestMeterAsWriter(t *testing.T) {
	t.Parallel()
	body := fixture(t, "chat.sse")
	m := NewMeter(nil, APIOpenAICompletions, nil)
	io.Copy(io.Discard, io.TeeReader(bytes.NewReader(body), m))
	if got, want := m.Usage(), cases[3].want; got != want {
		t.Fatalf("usage %+v, want %+v", got, want)
	}
}

func FuzzMeter(f *testing.F) {
	for _, tc := range cases {
		f.Add(fixture(f, tc.file), uint8(7))
	}
	f.Add([]byte(`{"usage":{"input_tokens":1}}`), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, size uint8) {
		whole := NewMeter(io.NopCloser(bytes.NewReader(body)), "", nil)
		io.Copy(io.Discard, whole)
		split := NewMeter(io.NopCloser(&chunked{b: body, n: int(size%64) + 1}), "", nil)
		out, _ := io.ReadAll(split)
		if !bytes.Equal(out, body) {
			t.Fatal("body changed")
		}
		if whole.Usage() != split.Usage() {
			t.Fatalf("whole %+v, split %+v", whole.Usage(), split.Usage())
		}
	})
}

// chunked reads b at most n bytes at a time.
type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[k:]
	return k, nil
}
