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
	shapeResponses              // OpenAI Responses
)

// APIs the gateway names (gateway.ChatRequest.API).
const (
	apiAnthropic = "anthropic-messages"
	apiOpenAI    = "openai-completions"
	apiResponses = "openai-responses"
)

func shapeOf(api string) (shape, bool) {
	switch api {
	case apiAnthropic:
		return shapeAnthropic, true
	case apiOpenAI:
		return shapeOpenAI, true
	case apiResponses:
		return shapeResponses, true
	}
	return 0, false
}

// typedCommand is the command the user typed last, read the way the API
// puts it.
func typedCommand(sh shape, body []byte) (command, bool) {
	if sh == shapeResponses {
		return findCommand(body, responsesTurn)
	}
	return findCommand(body, messagesTurn)
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
	case sh == shapeResponses && req.Stream:
		responsesStream(w, text, model, now)
	case sh == shapeResponses:
		writeJSON(w, http.StatusOK, response(newID("resp_opensoul_"), newID("msg_opensoul_"), text, model, now, true))
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

// response is a Responses API response object holding one assistant
// message with text, completed, or in progress with no output yet.
func response(id, msgID, text, model string, now time.Time, done bool) map[string]any {
	r := map[string]any{
		"id": id, "object": "response", "created_at": now.Unix(), "model": model,
		"status": "in_progress", "output": []any{}, "error": nil, "incomplete_details": nil,
		"instructions": nil, "metadata": map[string]any{}, "parallel_tool_calls": true,
		"temperature": nil, "top_p": nil, "tool_choice": "auto", "tools": []any{}, "usage": nil,
	}
	if done {
		r["status"] = "completed"
		r["output"] = []any{responseMessage(msgID, text, "completed")}
		r["usage"] = map[string]any{
			"input_tokens": 0, "input_tokens_details": map[string]any{"cached_tokens": 0},
			"output_tokens": 0, "output_tokens_details": map[string]any{"reasoning_tokens": 0},
			"total_tokens": 0,
		}
	}
	return r
}

func responseMessage(id, text, status string) map[string]any {
	content := []any{}
	if status == "completed" {
		content = append(content, outputText(text))
	}
	return map[string]any{"type": "message", "id": id, "status": status, "role": "assistant", "content": content}
}

func outputText(text string) map[string]any {
	return map[string]any{"type": "output_text", "text": text, "annotations": []any{}}
}

// responsesStream writes the event sequence of a Responses stream for one
// text message: created, the item and its part added, the text delta and
// done, the part and item done, completed.
func responsesStream(w http.ResponseWriter, text, model string, now time.Time) {
	s := startSSE(w)
	id, msgID := newID("resp_opensoul_"), newID("msg_opensoul_")
	seq := 0
	event := func(typ string, fields map[string]any) {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		s.event(typ, fields)
	}
	at := func(fields map[string]any) map[string]any {
		fields["item_id"], fields["output_index"], fields["content_index"] = msgID, 0, 0
		return fields
	}
	event("response.created", map[string]any{"response": response(id, msgID, "", model, now, false)})
	event("response.in_progress", map[string]any{"response": response(id, msgID, "", model, now, false)})
	event("response.output_item.added", map[string]any{"output_index": 0, "item": responseMessage(msgID, "", "in_progress")})
	event("response.content_part.added", at(map[string]any{"part": outputText("")}))
	event("response.output_text.delta", at(map[string]any{"delta": text, "logprobs": []any{}}))
	event("response.output_text.done", at(map[string]any{"text": text, "logprobs": []any{}}))
	event("response.content_part.done", at(map[string]any{"part": outputText(text)}))
	event("response.output_item.done", map[string]any{"output_index": 0, "item": responseMessage(msgID, text, "completed")})
	event("response.completed", map[string]any{"response": response(id, msgID, text, model, now, true)})
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
