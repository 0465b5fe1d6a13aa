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
