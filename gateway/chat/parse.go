package chat

import (
	"bytes"
	"encoding/json"
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

// lastUserText returns the text the user typed last: the last message of
// the request when its role is "user", as a string or its last text part.
// Chat clients that add context blocks before the typed text (system
// reminders, attachments) put the typed text last. Only the last message
// is decoded; the rest of a long conversation is skipped over.
func lastUserText(body []byte) (string, bool) {
	if !mayHoldCommand(body) {
		return "", false
	}
	raw, ok := lastMessage(body)
	if !ok {
		return "", false
	}
	var m message
	if json.Unmarshal(raw, &m) != nil || m.Role != "user" {
		return "", false
	}
	return contentText(m.Content, "text")
}

// contentText is a message's content when it is a string, else the text
// of its last part of type textType.
func contentText(content json.RawMessage, textType string) (string, bool) {
	if len(content) == 0 {
		return "", false
	}
	var s string
	if json.Unmarshal(content, &s) == nil {
		return s, true
	}
	var parts []part
	if json.Unmarshal(content, &parts) != nil {
		return "", false
	}
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i].Type == textType {
			return parts[i].Text, true
		}
	}
	return "", false
}

// lastResponsesText is lastUserText for the OpenAI Responses API: the
// body's "input" is the typed text itself, or a list of items whose last
// one, when it is the user's message, holds it as a string or as its last
// input_text part.
func lastResponsesText(body []byte) (string, bool) {
	if !mayHoldCommand(body) {
		return "", false
	}
	input, last, ok := scanTop(body, "input")
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(input, &s) == nil {
		return s, true
	}
	if last == nil {
		return "", false
	}
	var m struct {
		message
		Type string `json:"type"`
	}
	if json.Unmarshal(last, &m) != nil || m.Role != "user" || (m.Type != "" && m.Type != "message") {
		return "", false
	}
	return contentText(m.Content, "input_text")
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
