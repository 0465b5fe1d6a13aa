package chat

import (
	"encoding/json"
	"slices"
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

func TestUserTexts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body string
		want       []string
		ok         bool
	}{
		{"string", `{"messages":[{"role":"user","content":"/model"}]}`, []string{"/model"}, true},
		{"blocks: every text part", `{"messages":[{"role":"user","content":[{"type":"text","text":"ctx"},{"type":"image"},{"type":"text","text":"/new"}]}]}`, []string{"ctx", "/new"}, true},
		{"openai parts", `{"messages":[{"role":"system","content":"x"},{"role":"user","content":[{"type":"text","text":"/model list"},{"type":"image_url","image_url":{"url":"u"}}]}]}`, []string{"/model list"}, true},
		{"trailing system message", `{"messages":[{"role":"user","content":"/model"},{"role":"system","content":"env"}]}`, []string{"/model"}, true},
		{"trailing developer messages", `{"messages":[{"role":"user","content":"/new"},{"role":"developer","content":"a"},{"role":"system","content":[{"type":"text","text":"b"}]}]}`, []string{"/new"}, true},
		{"history before", `{"messages":[{"role":"user","content":"/model"},{"role":"assistant","content":"a"},{"role":"user","content":"hi"}]}`, []string{"hi"}, true},
		{"assistant last", `{"messages":[{"role":"user","content":"/model"},{"role":"assistant","content":"a"}]}`, nil, false},
		{"assistant before a system message", `{"messages":[{"role":"user","content":"/model"},{"role":"assistant","content":"a"},{"role":"system","content":"s"}]}`, nil, false},
		{"only system", `{"messages":[{"role":"system","content":"/model"}]}`, nil, false},
		{"tool result only", `{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"/model"}]}]}`, nil, false},
		{"turn of two user messages (OpenClaw)", `{"messages":[{"role":"assistant","content":"a"},{"role":"user","content":[{"type":"text","text":"[Wed 2026-12-02 01:20 UTC] /model status"}]},{"role":"user","content":[{"type":"text","text":"<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>x<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"}]}]}`, []string{"[Wed 2026-12-02 01:20 UTC] /model status", "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>x<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"}, true},
		{"turn across a system message", `{"messages":[{"role":"user","content":"/new"},{"role":"system","content":"s"},{"role":"user","content":"ctx"}]}`, []string{"/new", "ctx"}, true},
		{"tool result after the text", `{"messages":[{"role":"user","content":"/new"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"}]}]}`, []string{"/new"}, true},
		{"no messages", `{"model":"m","x":"/model"}`, nil, false},
		{"not json", `nope /model`, nil, false},
		{"empty", ``, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := userTexts([]byte(tc.body), messagesTurn)
			if !slices.Equal(got, tc.want) || ok != tc.ok {
				t.Errorf("userTexts = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestFindCommand: the command typed alone in any text part of the turn,
// around what clients add to it; never a prompt that mentions one.
func TestFindCommand(t *testing.T) {
	t.Parallel()
	msg := func(parts ...string) string {
		var ps []any
		for _, p := range parts {
			ps = append(ps, map[string]any{"type": "text", "text": p})
		}
		b, _ := json.Marshal(map[string]any{"messages": []any{map[string]any{"role": "user", "content": ps}, map[string]any{"role": "system", "content": "env"}}})
		return string(b)
	}
	reminder := "<system-reminder>\nAs you answer, use /model when asked.\n</system-reminder>"
	internal := "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nThis context is runtime-generated. /new\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"
	cases := []struct {
		name, body string
		want       command
		ok         bool
	}{
		{"claude code: reminders then a leading space", msg(reminder, " /model status"), command{name: cmdModel, arg: "status"}, true},
		{"claude code: double slash", msg(reminder, "//model list"), command{name: cmdModel, arg: "list"}, true},
		{"reminder inside the typed part", msg(reminder + "\n/new"), command{name: cmdNew}, true},
		{"openclaw: timestamp first, internal context last", msg("[Tue 2026-12-01 20:38 UTC] /model status", internal), command{name: cmdModel, arg: "status"}, true},
		{"timestamp alone is no command", msg("[Tue 2026-12-01 20:38 UTC]"), command{}, false},
		{"only the internal context names one", msg("hello", internal), command{}, false},
		{"only a reminder names one", msg("<system-reminder>/model</system-reminder>", "hi"), command{}, false},
		{"prose mentioning it", msg(reminder, "what does /model do?"), command{}, false},
		{"command then prose in one part", msg("/new\nand then tell me a story"), command{}, false},
		{"bracketed non-timestamp", msg("[note] /new"), command{}, false},
		{"escaped slash typed", msg(`\\/model status`), command{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := findCommand([]byte(tc.body), messagesTurn)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Errorf("findCommand(%s) = %+v, %v; want %+v, %v", tc.body, got, ok, tc.want, tc.ok)
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
		for _, spec := range []turnSpec{messagesTurn, responsesTurn} {
			if c, ok := findCommand(body, spec); ok && c.name != cmdModel && c.name != cmdNew && c.name != cmdReset {
				t.Errorf("%s: found %+v", body, c)
			}
		}
	})
}

func TestEscapedSlash(t *testing.T) {
	t.Parallel()
	c, ok := findCommand([]byte(`{"messages":[{"role":"user","content":"\/model list"}]}`), messagesTurn)
	if !ok || c.arg != "list" {
		t.Errorf("escaped slash: %+v %v", c, ok)
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
		if _, ok := findCommand(body, messagesTurn); ok {
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
		findCommand(body, messagesTurn)
	}
}

// userTextsRef is the plain reference: decode the whole conversation,
// then look for the turn the same way. (Content is read by the same
// contentTexts: these references check the one-pass scan, not the content
// rules.)
func userTextsRef(body []byte, spec turnSpec) ([]string, bool) {
	var req struct {
		Messages json.RawMessage `json:"messages"`
		Input    json.RawMessage `json:"input"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil, false
	}
	raw := req.Messages
	if spec.field == "input" {
		raw = req.Input
	}
	if raw == nil {
		return nil, false
	}
	if spec.items {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return []string{s}, true
		}
	}
	// The conversation split by full decoding instead of the scan; which
	// item is the user's turn is then the same rule (turnTexts).
	var elems []json.RawMessage
	if json.Unmarshal(raw, &elems) != nil {
		return nil, false
	}
	items := make([][]byte, len(elems))
	for i, e := range elems {
		items[i] = e
	}
	return turnTexts(items, spec)
}

// FuzzUserTexts: on valid JSON the one-pass scan finds what decoding
// everything finds, whenever a command word is in the body.
func FuzzUserTexts(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"role":"user","content":"/model"}]}`,
		`{"model":"m","messages":[{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"/new"}]}],"tools":[{"a":[1,2,{"b":"]}"}]}]}`,
		`{"messages":[],"messages":[{"role":"user","content":"/reset"}]}`,
		`{"messag\u0065s":[{"content":"\/model list","role":"user"}]}`,
		`{"messages":[{"role":"user","content":"/model"}],"messages":[]}`,
		`{ "stream" : true , "messages" : [ { "role" : "user" , "content" : "/model \"x\"" } ] }`,
		`{"messages":{"role":"user","content":"/model"}}`,
		`[{"messages":[{"role":"user","content":"/model"}]}]`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>x</system-reminder>"},{"type":"text","text":" /model"}]},{"role":"system","content":"s"}]}`,
		`{"messages":[1,{"role":"user","content":"/new"},{"role":"developer","content":[]}]}`,
		`{"messages":[{"role":"assistant","content":"/new"},{"role":"system"},{"role":"system","content":null}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotOK := userTexts(body, messagesTurn)
		if !json.Valid(body) || !mayHoldCommand(body) {
			return
		}
		want, wantOK := userTextsRef(body, messagesTurn)
		if !slices.Equal(got, want) || gotOK != wantOK {
			t.Errorf("%s: scan = %q %v, decode = %q %v", body, got, gotOK, want, wantOK)
		}
	})
}

func TestResponsesTexts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body string
		want       []string
		ok         bool
	}{
		{"input string", `{"model":"gpt-5","input":"/model list"}`, []string{"/model list"}, true},
		{"last item, string content", `{"input":[{"role":"developer","content":"be brief"},{"role":"user","content":"/model"}]}`, []string{"/model"}, true},
		{"typed message, input_text parts", `{"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"ctx"},{"type":"input_image","image_url":"u"},{"type":"input_text","text":"/new"}]}]}`, []string{"ctx", "/new"}, true},
		{"developer after the user", `{"input":[{"role":"user","content":"/model"},{"type":"message","role":"developer","content":"d"}]}`, []string{"/model"}, true},
		{"history before", `{"input":[{"role":"user","content":"/model"},{"role":"assistant","content":"a"},{"role":"user","content":"hi"}]}`, []string{"hi"}, true},
		{"assistant last", `{"input":[{"role":"user","content":"/model"},{"role":"assistant","content":"a"}]}`, nil, false},
		{"tool output last", `{"input":[{"role":"user","content":"/model"},{"type":"function_call_output","call_id":"c","output":"/model"}]}`, nil, false},
		{"two user items", `{"input":[{"role":"assistant","content":"a"},{"role":"user","content":"/new"},{"role":"user","content":"ctx"}]}`, []string{"/new", "ctx"}, true},
		{"not a message item", `{"input":[{"type":"item_reference","role":"user","content":"/model"}]}`, nil, false},
		{"no input", `{"model":"m","instructions":"/model"}`, nil, false},
		{"not json", `nope /model`, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := userTexts([]byte(tc.body), responsesTurn)
			if !slices.Equal(got, tc.want) || ok != tc.ok {
				t.Errorf("userTexts = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzResponsesTexts: on valid JSON the scan finds what decoding
// everything finds, whenever a command word is in the body.
func FuzzResponsesTexts(f *testing.F) {
	for _, s := range []string{
		`{"input":"/model"}`,
		`{"input":[{"role":"user","content":[{"type":"input_text","text":"/new"}]}]}`,
		`{"input":[],"input":"/reset"}`,
		`{"inp\u0075t":[{"content":"\/model list","role":"user"}]}`,
		`{"input":"/model","input":[{"role":"assistant","content":"x"}]}`,
		`{"input":null,"instructions":"/model"}`,
		`{"input":{"role":"user","content":"/model"}}`,
		`{"input":[{"role":"user","content":"/new"},{"type":"message","role":"developer","content":"x"},{"role":"system","content":[]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotOK := userTexts(body, responsesTurn)
		if !json.Valid(body) || !mayHoldCommand(body) {
			return
		}
		want, wantOK := userTextsRef(body, responsesTurn)
		if !slices.Equal(got, want) || gotOK != wantOK {
			t.Errorf("%s: scan = %q %v, decode = %q %v", body, got, gotOK, want, wantOK)
		}
	})
}
