// Command fakeupstream is the provider the real-client script
// (testdata/clients/realclients.sh) points the gateway at: one loopback
// server speaking Anthropic's Messages API and OpenAI's Chat Completions
// and Responses APIs, streamed or not, in their wire formats. Each answer
// names the key that got it ("PONG from good"), so the script can tell
// which credential served a client.
//
// Keys behave as their mode says: ok (the default), limited (429 with
// Retry-After: 30, a rate limit), longlimit (429 with Retry-After: 3600)
// or invalid (401). The script drives it over HTTP:
//
//	POST /_mode?key=K&mode=M   (key=* sets every key, and the default)
//	GET  /_stats               {"requests":{"<key>":n,…},"total":n}
//
// With -dump DIR each request is also written to DIR/NNN.json (headers
// included: point it only at fake keys), which is how the captures in
// testdata/clients are made.
//
// Usage: go run ./testdata/clients/fakeupstream -addr 127.0.0.1:0 -addr-file F
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
)

type upstream struct {
	mu    sync.Mutex
	modes map[string]string // key → mode; "*" is the default
	count map[string]int
	dump  string // directory for request dumps; "" for none
	n     int    // requests dumped
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	addrFile := flag.String("addr-file", "", "write the bound address here once listening")
	dump := flag.String("dump", "", "write each request (method, path, headers, body) as JSON into this directory")
	flag.Parse()
	u := &upstream{modes: map[string]string{"*": "ok"}, count: map[string]int{}, dump: *dump}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(ln.Addr().String()), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	log.Fatal(http.Serve(ln, u))
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_mode":
		u.mu.Lock()
		key, mode := r.URL.Query().Get("key"), r.URL.Query().Get("mode")
		if key == "*" {
			u.modes = map[string]string{}
		}
		u.modes[key] = mode
		u.mu.Unlock()
		return
	case "/_stats":
		u.mu.Lock()
		total := 0
		for _, n := range u.count {
			total += n
		}
		json.NewEncoder(w).Encode(map[string]any{"requests": u.count, "total": total})
		u.mu.Unlock()
		return
	}
	key := r.Header.Get("x-api-key")
	if key == "" {
		key = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	name := key[strings.LastIndex(key, "-")+1:] // sk-ant-api03-…-good → good
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	json.Unmarshal(body, &req)
	api := apiOf(r.URL.Path)
	if api == "" {
		http.NotFound(w, r)
		return
	}
	u.mu.Lock()
	u.count[name]++
	if u.dump != "" {
		u.n++
		rec, _ := json.MarshalIndent(map[string]any{"method": r.Method, "path": r.URL.Path, "header": r.Header, "body": json.RawMessage(body)}, "", "  ")
		os.WriteFile(fmt.Sprintf("%s/%03d.json", u.dump, u.n), rec, 0o600)
	}
	mode, ok := u.modes[key]
	if !ok {
		mode = u.modes["*"]
	}
	u.mu.Unlock()
	log.Printf("%s %s key=%s mode=%s stream=%v model=%s", r.Method, r.URL.Path, name, mode, req.Stream, req.Model)
	switch mode {
	case "limited", "longlimit":
		retry := "30"
		if mode == "longlimit" {
			retry = "3600"
		}
		w.Header().Set("Retry-After", retry)
		fail(w, api, http.StatusTooManyRequests, "rate_limit_error", "rate limited (fake upstream)")
		return
	case "invalid":
		fail(w, api, http.StatusUnauthorized, "authentication_error", "invalid x-api-key (fake upstream)")
		return
	}
	text := "PONG from " + name
	switch {
	case req.Stream:
		stream(w, api, req.Model, text)
	default:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(whole(api, req.Model, text))
	}
}

func apiOf(path string) string {
	for _, s := range []string{"/messages", "/chat/completions", "/responses"} {
		if strings.HasSuffix(path, s) {
			return s
		}
	}
	return ""
}

func fail(w http.ResponseWriter, api string, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if api == "/messages" {
		json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"type": typ, "message": msg, "code": typ}})
}

func whole(api, model, text string) any {
	switch api {
	case "/messages":
		return map[string]any{"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
			"content":     []any{map[string]any{"type": "text", "text": text}},
			"stop_reason": "end_turn", "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": 5, "output_tokens": 3}}
	case "/chat/completions":
		return map[string]any{"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": text}}},
			"usage": map[string]any{"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
	}
	return response(model, text)
}

func response(model, text string) map[string]any {
	return map[string]any{"id": "resp_fake", "object": "response", "created_at": 1, "status": "completed", "model": model,
		"output": []any{message(text)},
		"usage": map[string]any{"input_tokens": 5, "output_tokens": 3, "total_tokens": 8,
			"input_tokens_details": map[string]any{"cached_tokens": 0}, "output_tokens_details": map[string]any{"reasoning_tokens": 0}}}
}

func message(text string) map[string]any {
	return map[string]any{"id": "msg_fake", "type": "message", "role": "assistant", "status": "completed",
		"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}}
}

func stream(w http.ResponseWriter, api, model, text string) {
	w.Header().Set("Content-Type", "text/event-stream")
	flusher, _ := w.(http.Flusher)
	event := func(name string, data any) {
		b, _ := json.Marshal(data)
		if name != "" {
			fmt.Fprintf(w, "event: %s\n", name)
		}
		fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	half := len(text) / 2
	parts := []string{text[:half], text[half:]}
	switch api {
	case "/messages":
		event("message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_fake", "type": "message",
			"role": "assistant", "model": model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": 5, "output_tokens": 1}}})
		event("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
		for _, p := range parts {
			event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": p}})
		}
		event("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
		event("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
			"usage": map[string]any{"output_tokens": 3}})
		event("message_stop", map[string]any{"type": "message_stop"})
	case "/chat/completions":
		chunk := func(delta map[string]any, finish any) map[string]any {
			return map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
				"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
		}
		event("", chunk(map[string]any{"role": "assistant", "content": ""}, nil))
		for _, p := range parts {
			event("", chunk(map[string]any{"content": p}, nil))
		}
		last := chunk(map[string]any{}, "stop")
		last["usage"] = map[string]any{"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
		event("", last)
		fmt.Fprint(w, "data: [DONE]\n\n")
	default:
		created := response(model, "")
		created["status"], created["output"] = "in_progress", []any{}
		seq := 0
		ev := func(typ string, fields map[string]any) {
			fields["type"], fields["sequence_number"] = typ, seq
			seq++
			event(typ, fields)
		}
		ev("response.created", map[string]any{"response": created})
		item := message("")
		item["status"], item["content"] = "in_progress", []any{}
		ev("response.output_item.added", map[string]any{"output_index": 0, "item": item})
		ev("response.content_part.added", map[string]any{"output_index": 0, "item_id": "msg_fake", "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
		for _, p := range parts {
			ev("response.output_text.delta", map[string]any{"output_index": 0, "item_id": "msg_fake", "content_index": 0, "delta": p})
		}
		ev("response.output_text.done", map[string]any{"output_index": 0, "item_id": "msg_fake", "content_index": 0, "text": text})
		ev("response.content_part.done", map[string]any{"output_index": 0, "item_id": "msg_fake", "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": text, "annotations": []any{}}})
		ev("response.output_item.done", map[string]any{"output_index": 0, "item": message(text)})
		ev("response.completed", map[string]any{"response": response(model, text)})
	}
}
