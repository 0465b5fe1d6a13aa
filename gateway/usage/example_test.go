package usage_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/opensoul/opensoul/gateway/usage"
)

// A Meter reads an answer through and reports the usage it carried when
// the body is done; the bytes pass unchanged.
func ExampleNewMeter() {
	stream := "event: message_start\n" +
		`data: {"type":"message_start","message":{"usage":{"input_tokens":25,"cache_read_input_tokens":1000,"output_tokens":1}}}` + "\n\n" +
		"event: message_delta\n" +
		`data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":12}}` + "\n\n"
	m := usage.NewMeter(io.NopCloser(strings.NewReader(stream)), usage.APIAnthropicMessages, func(u usage.Usage) {
		fmt.Printf("input %d, output %d, cache read %d\n", u.Input, u.Output, u.CacheRead)
	})
	io.Copy(io.Discard, m)
	m.Close()
	// Output: input 25, output 12, cache read 1000
}
