package chat

import (
	"encoding/json"
	"testing"
)

func TestParseCommand(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, text string
		want       command
		ok         bool
	}{
		{"bare", "/model", command{name: cmdModel}, true},
		{"spaces and newline", "  /model  \n", command{name: cmdModel}, true},
		{"list", "/model list", command{name: cmdModel, arg: "list"}, true},
		{"status upper", "/Model STATUS", command{name: cmdModel, arg: "status"}, true},
		{"default", "/model default", command{name: cmdModel, arg: "default"}, true},
		{"ref", "/model anthropic/claude-opus-5", command{name: cmdModel, arg: "anthropic/claude-opus-5"}, true},
		{"ref with profile", "/model opus@anthropic:work", command{name: cmdModel, arg: "opus@anthropic:work"}, true},
		{"space before @", "/model opus @anthropic:work", command{name: cmdModel, arg: "opus@anthropic:work"}, true},
		{"space after @", "/model opus@ anthropic:work", command{name: cmdModel, arg: "opus@anthropic:work"}, true},
		{"only profile", "/model @anthropic:work", command{name: cmdModel, arg: "@anthropic:work"}, true},
		{"too many words", "/model opus please", command{name: cmdModel, bad: "/model opus please"}, true},
		{"new", "/new", command{name: cmdNew}, true},
		{"reset", " /reset ", command{name: cmdReset}, true},
		{"new with text", "/new topic", command{}, false},
		{"prose", "tell me about /model", command{}, false},
		{"plural", "/models", command{}, false},
		{"empty", "", command{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := parseCommand(tc.text)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Errorf("parseCommand(%q) = %+v, %v; want %+v, %v", tc.text, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestLastUserText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body, want string
		ok               bool
	}{
		{"string", `{"messages":[{"role":"user","content":"/model"}]}`, "/model", true},
		{"blocks: last text", `{"messages":[{"role":"user","content":[{"type":"text","text":"ctx"},{"type":"image"},{"type":"text","text":"/new"}]}]}`, "/new", true},
		{"openai parts", `{"messages":[{"role":"system","content":"x"},{"role":"user","content":[{"type":"text","text":"/model list"},{"type":"image_url","image_url":{"url":"u"}}]}]}`, "/model list", true},
		{"history before", `{"messages":[{"role":"user","content":"/model"},{"role":"assistant","content":"a"},{"role":"user","content":"hi"}]}`, "hi", true},
		{"assistant last", `{"messages":[{"role":"user","content":"/model"},{"role":"assistant","content":"a"}]}`, "", false},
		{"tool result only", `{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"/model"}]}]}`, "", false},
		{"no messages", `{"model":"m"}`, "", false},
		{"not json", `nope`, "", false},
		{"empty", ``, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := lastUserText([]byte(tc.body))
			if got != tc.want || ok != tc.ok {
				t.Errorf("lastUserText = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzCommand: no body or text makes the parsers panic, and whatever is
// recognised is one of the commands.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{"/model", "/model opus@anthropic:work", "/new", "/model a b", "/model @", "/model x@ y"} {
		body, _ := json.Marshal(map[string]any{"messages": []any{map[string]any{"role": "user", "content": s}}})
		f.Add(body)
	}
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"/reset"}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		text, ok := lastUserText(body)
		if !ok {
			return
		}
		if c, ok := parseCommand(text); ok && c.name != cmdModel && c.name != cmdNew && c.name != cmdReset {
			t.Errorf("parsed %q as %+v", text, c)
		}
	})
}

func TestEscapedSlash(t *testing.T) {
	t.Parallel()
	got, ok := lastUserText([]byte(`{"messages":[{"role":"user","content":"\/model list"}]}`))
	if c, isCmd := parseCommand(got); !ok || !isCmd || c.arg != "list" {
		t.Errorf("escaped slash: %q %v", got, ok)
	}
}

// BenchmarkPassThrough is the cost every ordinary request pays: a long
// conversation without a command word.
func BenchmarkPassThrough(b *testing.B) {
	var msgs []any
	for i := range 200 {
		msgs = append(msgs, map[string]any{"role": []string{"user", "assistant"}[i%2], "content": "a fairly ordinary sentence about nothing in particular, repeated"})
	}
	body, _ := json.Marshal(map[string]any{"model": "m", "messages": msgs})
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, ok := lastUserText(body); ok {
			b.Fatal("found a command")
		}
	}
}

// BenchmarkCommandInHistory: a conversation that once used /model pays
// a parse per request.
func BenchmarkCommandInHistory(b *testing.B) {
	msgs := []any{map[string]any{"role": "user", "content": "/model opus"}, map[string]any{"role": "assistant", "content": "ok"}}
	for i := range 200 {
		msgs = append(msgs, map[string]any{"role": []string{"user", "assistant"}[i%2], "content": "a fairly ordinary sentence about nothing in particular, repeated"})
	}
	body, _ := json.Marshal(map[string]any{"model": "m", "messages": msgs})
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		lastUserText(body)
	}
}

// lastUserTextRef is the plain reference: decode every message. (The
// content of the message found is read by the same contentText: these
// references check the one-pass scan, not the content rules.)
func lastUserTextRef(body []byte) (string, bool) {
	var req struct {
		Messages []message `json:"messages"`
	}
	if json.Unmarshal(body, &req) != nil || len(req.Messages) == 0 {
		return "", false
	}
	m := req.Messages[len(req.Messages)-1]
	if m.Role != "user" {
		return "", false
	}
	return contentText(m.Content, "text")
}

// FuzzLastMessage: on valid JSON the one-pass scan finds what decoding
// everything finds, whenever a command word is in the body.
func FuzzLastMessage(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"role":"user","content":"/model"}]}`,
		`{"model":"m","messages":[{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"/new"}]}],"tools":[{"a":[1,2,{"b":"]}"}]}]}`,
		`{"messages":[],"messages":[{"role":"user","content":"/reset"}]}`,
		`{"messag\u0065s":[{"content":"\/model list","role":"user"}]}`,
		`{"messages":[{"role":"user","content":"/model"}],"messages":[]}`,
		`{ "stream" : true , "messages" : [ { "role" : "user" , "content" : "/model \"x\"" } ] }`,
		`{"messages":{"role":"user","content":"/model"}}`,
		`[{"messages":[{"role":"user","content":"/model"}]}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotOK := lastUserText(body)
		if !json.Valid(body) || !mayHoldCommand(body) {
			return
		}
		want, wantOK := lastUserTextRef(body)
		if got != want || gotOK != wantOK {
			t.Errorf("%s: scan = %q %v, decode = %q %v", body, got, gotOK, want, wantOK)
		}
	})
}

func TestLastResponsesText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body, want string
		ok               bool
	}{
		{"input string", `{"model":"gpt-5","input":"/model list"}`, "/model list", true},
		{"last item, string content", `{"input":[{"role":"developer","content":"be brief"},{"role":"user","content":"/model"}]}`, "/model", true},
		{"typed message, input_text parts", `{"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"ctx"},{"type":"input_image","image_url":"u"},{"type":"input_text","text":"/new"}]}]}`, "/new", true},
		{"history before", `{"input":[{"role":"user","content":"/model"},{"role":"assistant","content":"a"},{"role":"user","content":"hi"}]}`, "hi", true},
		{"assistant last", `{"input":[{"role":"user","content":"/model"},{"role":"assistant","content":"a"}]}`, "", false},
		{"tool output last", `{"input":[{"role":"user","content":"/model"},{"type":"function_call_output","call_id":"c","output":"/model"}]}`, "", false},
		{"not a message item", `{"input":[{"type":"item_reference","role":"user","content":"/model"}]}`, "", false},
		{"no input", `{"model":"m","instructions":"/model"}`, "", false},
		{"not json", `nope /model`, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := lastResponsesText([]byte(tc.body))
			if got != tc.want || ok != tc.ok {
				t.Errorf("lastResponsesText = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// lastResponsesTextRef decodes the whole input: what lastResponsesText's
// one-pass scan must agree with (content read by contentText, as above).
func lastResponsesTextRef(body []byte) (string, bool) {
	var req struct {
		Input json.RawMessage `json:"input"`
	}
	if json.Unmarshal(body, &req) != nil || req.Input == nil {
		return "", false
	}
	var s string
	if json.Unmarshal(req.Input, &s) == nil {
		return s, true
	}
	var items []json.RawMessage
	if json.Unmarshal(req.Input, &items) != nil || len(items) == 0 {
		return "", false
	}
	var m struct {
		Type    string          `json:"type"`
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(items[len(items)-1], &m) != nil || m.Role != "user" || (m.Type != "" && m.Type != "message") {
		return "", false
	}
	return contentText(m.Content, "input_text")
}

// FuzzLastResponsesText: on valid JSON the scan finds what decoding
// everything finds, whenever a command word is in the body.
func FuzzLastResponsesText(f *testing.F) {
	for _, s := range []string{
		`{"input":"/model"}`,
		`{"input":[{"role":"user","content":[{"type":"input_text","text":"/new"}]}]}`,
		`{"input":[],"input":"/reset"}`,
		`{"inp\u0075t":[{"content":"\/model list","role":"user"}]}`,
		`{"input":"/model","input":[{"role":"assistant","content":"x"}]}`,
		`{"input":null,"instructions":"/model"}`,
		`{"input":{"role":"user","content":"/model"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotOK := lastResponsesText(body)
		if !json.Valid(body) || !mayHoldCommand(body) {
			return
		}
		want, wantOK := lastResponsesTextRef(body)
		if got != want || gotOK != wantOK {
			t.Errorf("%s: scan = %q %v, decode = %q %v", body, got, gotOK, want, wantOK)
		}
	})
}
