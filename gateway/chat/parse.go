package chat

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// Command names.
const (
	cmdModel = "/model"
	cmdNew   = "/new"
	cmdReset = "/reset"
)

// command is a parsed chat command: its name and, for /model, the
// argument ("", "list", "status", "default", "help" or a model ref).
type command struct {
	name string
	arg  string
	bad  string // a /model line that is not a command form; answered with the usage
}

func (c command) String() string {
	if c.arg == "" {
		return c.name
	}
	return c.name + " " + c.arg
}

// message is the part of a chat message both APIs share: a role and
// content that is a string or an array of typed parts.
type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type part struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// markers are the bytes a body holding a command must contain (an
// escaped slash, "\/model", contains them too).
var markers = [][]byte{[]byte("/model"), []byte("/new"), []byte("/reset")}

// mayHoldCommand is the cheap test every request passes through before
// its body is looked into: most bodies hold no command word at all.
func mayHoldCommand(body []byte) bool {
	for _, m := range markers {
		if bytes.Contains(body, m) {
			return true
		}
	}
	return false
}

// turnSpec is where an API keeps the user's turn: the body's field
// holding the conversation, and the type of a text part in it.
type turnSpec struct {
	field    string // "messages" or "input"
	textType string // "text" or "input_text"
	items    bool   // Responses items: a bare string input is the turn, typed items are skipped
}

var (
	messagesTurn  = turnSpec{field: "messages", textType: "text"}
	responsesTurn = turnSpec{field: "input", textType: "input_text", items: true}
)

// item is one element of the conversation: a message, or (Responses) a
// typed item such as a tool call's output.
type item struct {
	message
	Type string `json:"type"`
}

// skipsRole reports whether a message with this role is passed over
// when looking for the user's turn: clients add instructions after the
// user's message (Claude Code ends with a {"role":"system"} message).
func skipsRole(role string) bool { return role == "system" || role == "developer" }

// userTexts returns the text parts of the user's last turn: the last
// message of the conversation that is not a system or developer message,
// when it is the user's. Only the messages from the end to that turn are
// decoded; the rest of a long conversation is skipped over.
func userTexts(body []byte, spec turnSpec) ([]string, bool) {
	if !mayHoldCommand(body) {
		return nil, false
	}
	val, elems, ok := scanTop(body, spec.field)
	if !ok {
		return nil, false
	}
	if spec.items {
		var s string
		if json.Unmarshal(val, &s) == nil {
			return []string{s}, true
		}
	}
	return turnTexts(elems, spec)
}

// turnTexts finds the user's turn in the raw conversation items: the
// user messages at the end of the conversation (system and developer
// messages among and after them passed over), in order. The turn can be
// several messages: OpenClaw sends the typed text and its internal
// context as two user messages (openclaw 2026.9.6, testdata/clients), and
// the APIs read consecutive user messages as one turn. A message of the
// turn without text parts (a tool result) adds nothing.
func turnTexts(elems [][]byte, spec turnSpec) ([]string, bool) {
	var turn [][]string // the turn's messages' texts, last first
	found := false
	for i := len(elems) - 1; i >= 0; i-- {
		var it item
		if json.Unmarshal(elems[i], &it) != nil {
			return nil, false
		}
		if spec.items && it.Type != "" && it.Type != "message" {
			break
		}
		if skipsRole(it.Role) {
			continue
		}
		if it.Role != "user" {
			break
		}
		found = true
		if texts, ok := contentTexts(it.Content, spec.textType); ok {
			turn = append(turn, texts)
		}
	}
	if !found || len(turn) == 0 {
		return nil, false
	}
	slices.Reverse(turn)
	return slices.Concat(turn...), true
}

// contentTexts is a message's content when it is a string, else the
// texts of its parts of type textType, in order.
func contentTexts(content json.RawMessage, textType string) ([]string, bool) {
	if len(content) == 0 {
		return nil, false
	}
	var s string
	if json.Unmarshal(content, &s) == nil {
		return []string{s}, true
	}
	var parts []part
	if json.Unmarshal(content, &parts) != nil {
		return nil, false
	}
	var texts []string
	for _, p := range parts {
		if p.Type == textType {
			texts = append(texts, p.Text)
		}
	}
	return texts, len(texts) > 0
}

// findCommand returns the command the user typed as their last turn.
// Every text part of the turn is looked at: clients put context around
// the typed text (Claude Code adds <system-reminder> parts before it,
// Codex an <environment_context> part, OpenClaw a timestamp before it and
// an internal-context part after it). A part is the command only when,
// without those additions, the command is all it says.
func findCommand(body []byte, spec turnSpec) (command, bool) {
	texts, ok := userTexts(body, spec)
	if !ok {
		return command{}, false
	}
	for _, t := range texts {
		if c, ok := parseCommand(typedPart(t)); ok {
			return c, true
		}
	}
	return command{}, false
}

// contextBlocks are the delimiters of text that clients add to the user's
// message themselves; what is between them was not typed.
var contextBlocks = [][2]string{
	{"<system-reminder>", "</system-reminder>"},                                      // Claude Code
	{"<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>", "<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"}, // OpenClaw
}

// typedPart is a text part without the client's context blocks and
// without a leading bracketed timestamp ("[Tue 2026-12-01 20:38 UTC] ").
func typedPart(t string) string {
	for _, b := range contextBlocks {
		t = cutBlocks(t, b[0], b[1])
	}
	t = strings.TrimSpace(t)
	if stamp, rest, ok := strings.Cut(t, "]"); ok && strings.HasPrefix(stamp, "[") && isTimestamp(stamp[1:]) {
		t = strings.TrimSpace(rest)
	}
	return t
}

// cutBlocks removes every begin…end block from t (an unterminated one to
// the end of t).
func cutBlocks(t, begin, end string) string {
	for {
		i := strings.Index(t, begin)
		if i < 0 {
			return t
		}
		j := strings.Index(t[i:], end)
		if j < 0 {
			return t[:i]
		}
		t = t[:i] + t[i+j+len(end):]
	}
}

// isTimestamp reports whether s looks like a time a client stamped on the
// message: short, one line, with a digit.
func isTimestamp(s string) bool {
	return len(s) > 0 && len(s) <= 48 && !strings.ContainsAny(s, "\n[") && strings.ContainsAny(s, "0123456789")
}

// parseCommand recognises a command typed as the whole message. /new and
// /reset must stand alone; any message whose first word is /model is a
// /model command (a malformed one gets the usage as its answer).
func parseCommand(text string) (command, bool) {
	f := strings.Fields(text)
	if len(f) == 0 {
		return command{}, false
	}
	name := strings.ToLower(f[0])
	if strings.HasPrefix(name, "//") {
		// "//model": Claude Code keeps "/model" for itself but sends
		// "//model" on, so the doubled slash is accepted everywhere.
		name = name[1:]
	}
	switch name {
	case cmdNew, cmdReset:
		return command{name: name}, len(f) == 1
	case cmdModel:
	default:
		return command{}, false
	}
	args := f[1:]
	switch {
	case len(args) == 0:
		return command{name: name}, true
	case len(args) == 1:
		arg := args[0]
		switch low := strings.ToLower(arg); low {
		case "list", "status", "default", "help":
			arg = low
		}
		return command{name: name, arg: arg}, true
	}
	// "/model sonnet @anthropic:work" and "/model sonnet@ anthropic:work"
	// are one ref typed with spaces around the @.
	joined := strings.Join(args, "")
	if strings.Count(joined, "@") >= 1 && (strings.HasPrefix(args[1], "@") || strings.HasSuffix(args[0], "@")) && len(args) == 2 {
		return command{name: name, arg: joined}, true
	}
	return command{name: name, bad: strings.Join(f, " ")}, true
}
