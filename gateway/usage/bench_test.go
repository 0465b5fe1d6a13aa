package usage

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkMeterEvent is the Meter's cost per SSE event as a stream
// passes: one op is one event, read as the proxy reads (one event per
// read, the way an upstream flushes them).
func BenchmarkMeterEvent(b *testing.B) {
	for _, bc := range []struct {
		name, api string
		event     []byte
	}{
		{"anthropic delta", APIAnthropicMessages, []byte(`event: content_block_delta` + "\n" +
			`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"The quick brown fox jumps over the lazy dog, again."}}` + "\n\n")},
		// With stream_options.include_usage every chunk carries "usage":null,
		// so the key matches in every event.
		{"chat chunk usage null", APIOpenAICompletions, []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-5","choices":[{"index":0,"delta":{"content":"The quick brown fox jumps over"},"finish_reason":null}],"usage":null}` + "\n\n")},
		// The event that carries usage: the object is decoded.
		{"anthropic message_delta", APIAnthropicMessages, []byte(`event: message_delta` + "\n" +
			`data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}` + "\n\n")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := NewMeter(io.NopCloser(&repeat{ev: bc.event}), bc.api, nil)
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(bc.event)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMeterStream meters a whole Anthropic stream of 200 text
// deltas, message_start and message_delta included.
func BenchmarkMeterStream(b *testing.B) {
	body := fixture(b, "anthropic.sse")
	start := body[:bytes.Index(body, []byte("event: content_block_start"))]
	end := body[bytes.Index(body, []byte("event: content_block_stop")):]
	delta := []byte(`event: content_block_delta` + "\n" +
		`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"The quick brown fox jumps over the lazy dog, again."}}` + "\n\n")
	events := [][]byte{start}
	for range 200 {
		events = append(events, delta)
	}
	events = append(events, end)
	b.ReportAllocs()
	for b.Loop() {
		m := NewMeter(nil, APIAnthropicMessages, nil)
		for _, ev := range events {
			m.Write(ev)
		}
		if m.Usage().Output != 42 {
			b.Fatal(m.Usage())
		}
	}
}

// repeat returns ev on every read.
type repeat struct{ ev []byte }

func (r *repeat) Read(p []byte) (int, error) { return copy(p, r.ev), nil }
