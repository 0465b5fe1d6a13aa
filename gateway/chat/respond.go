package chat

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/opensoul/opensoul/gateway"
)

// shape is the wire API an answer is written in.
type shape int

const (
	shapeAnthropic shape = iota // Anthropic Messages
	shapeOpenAI                 // OpenAI Chat Completions
)

// APIs the gateway names (gateway.ChatRequest.API).
const (
	apiAnthropic = "anthropic-messages"
	apiOpenAI    = "openai-completions"
)

func shapeOf(api string) (shape, bool) {
	switch api {
	case apiAnthropic:
		return shapeAnthropic, true
	case apiOpenAI:
		return shapeOpenAI, true
	}
	return 0, false
}

// HeaderCommand marks an answer the gateway gave itself to a chat command.
const HeaderCommand = "X-Opensoul-Chat"

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// replyModel is the model an answer names: the one asked for.
func replyModel(req gateway.ChatRequest) string {
	if req.Model != "" {
		return req.Model
	}
	return "opensoul"
}

// writeReply answers with text as the assistant's message, in JSON or as
// an SSE stream, in the request's API shape.
func writeReply(w http.ResponseWriter, sh shape, text string, req gateway.ChatRequest, now time.Time) {
	h := w.Header()
	h.Set(HeaderCommand, "command")
	h.Set("X-Opensoul-Profile", "chat")
	h.Set("X-Opensoul-Attempts", "0")
	model := replyModel(req)
	switch {
	case sh == shapeAnthropic && req.Stream:
		anthropicStream(w, text, model)
	case sh == shapeAnthropic:
		writeJSON(w, http.StatusOK, anthropicMessage(newID("msg_opensoul_"), text, model))
	case req.Stream:
		openAIStream(w, text, model, now, includeUsage(req.Body))
	default:
		writeJSON(w, http.StatusOK, map[string]any{
			"id": newID("chatcmpl-opensoul-"), "object": "chat.completion", "created": now.Unix(), "model": model,
			"choices": []any{map[string]any{
				"index":         0,
				"message":       map[string]any{"role": "assistant", "content": text, "refusal": nil},
				"logprobs":      nil,
				"finish_reason": "stop",
			}},
			"usage": map[string]any{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
		})
	}
}

func anthropicMessage(id, text, model string) map[string]any {
	content := []any{}
	if text != "" {
		content = append(content, map[string]any{"type": "text", "text": text})
	}
	return map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": model,
		"content": content, "stop_reason": "end_turn", "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": 0, "output_tokens": 0},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

// sseWriter writes server-sent events and flushes each one.
type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return sseWriter{w: w, f: f}
}

// event writes one event; name "" writes a data-only event (OpenAI).
func (s sseWriter) event(name string, data any) {
	var raw []byte
	switch d := data.(type) {
	case string:
		raw = []byte(d)
	default:
		raw, _ = json.Marshal(d)
	}
	if name != "" {
		io.WriteString(s.w, "event: "+name+"\n")
	}
	io.WriteString(s.w, "data: ")
	s.w.Write(raw)
	io.WriteString(s.w, "\n\n")
	if s.f != nil {
		s.f.Flush()
	}
}

// anthropicStream writes the event sequence of a Messages stream:
// message_start, one text block with its delta, message_delta, message_stop.
func anthropicStream(w http.ResponseWriter, text, model string) {
	s := startSSE(w)
	start := anthropicMessage(newID("msg_opensoul_"), "", model)
	start["stop_reason"] = nil
	s.event("message_start", map[string]any{"type": "message_start", "message": start})
	s.event("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
		"content_block": map[string]any{"type": "text", "text": ""}})
	s.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
		"delta": map[string]any{"type": "text_delta", "text": text}})
	s.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	s.event("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": 0}})
	s.event("message_stop", map[string]any{"type": "message_stop"})
}

// openAIStream writes chat.completion.chunk events: the role and text,
// the finish reason, the usage when asked for, then [DONE].
func openAIStream(w http.ResponseWriter, text, model string, now time.Time, usage bool) {
	s := startSSE(w)
	id := newID("chatcmpl-opensoul-")
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": now.Unix(), "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
	}
	s.event("", chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	s.event("", chunk(map[string]any{"content": text}, nil))
	s.event("", chunk(map[string]any{}, "stop"))
	if usage {
		s.event("", map[string]any{"id": id, "object": "chat.completion.chunk", "created": now.Unix(), "model": model,
			"choices": []any{}, "usage": map[string]any{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})
	}
	s.event("", "[DONE]")
}

// includeUsage reports stream_options.include_usage.
func includeUsage(body []byte) bool {
	var req struct {
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	return json.Unmarshal(body, &req) == nil && req.StreamOptions.IncludeUsage
}

// writeFailure answers a command that could not be carried out (the
// sessions file could not be read or written) in the API's error shape.
func writeFailure(w http.ResponseWriter, sh shape, msg string) {
	w.Header().Set(HeaderCommand, "failed")
	if sh == shapeAnthropic {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"type": "error",
			"error": map[string]any{"type": "api_error", "message": msg}})
		return
	}
	writeJSON(w, http.StatusInternalServerError, map[string]any{"error": map[string]any{
		"message": msg, "type": "server_error", "param": nil, "code": "opensoul_chat_command_failed"}})
}
