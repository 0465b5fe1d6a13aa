package main

import (
	"context"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
	"github.com/opensoul/opensoul/wasm"
)

// upstream is a fake Anthropic: a JSON message, or seven SSE events.
func upstream(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	key := r.Header.Get("x-api-key")
	if key == keyBusy {
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(429)
		io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"rate limited"}}`)
		return
	}
	if key != keyGood && key != keyGood2 && !strings.HasPrefix(key, scaleKeyPrefix) {
		w.WriteHeader(401)
		return
	}
	if r.Header.Get("accept") == "text/event-stream" {
		w.Header().Set("content-type", "text/event-stream")
		f := w.(http.Flusher)
		for _, ev := range sseEvents {
			io.WriteString(w, ev)
			f.Flush()
		}
		return
	}
	w.Header().Set("content-type", "application/json")
	io.WriteString(w, `{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-5","content":[{"type":"text","text":"Hello there, nice to meet you!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":14,"output_tokens":9}}`)
}

var sseEvents = []string{
	"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-5\",\"content\":[],\"usage\":{\"input_tokens\":14,\"output_tokens\":0}}}\n\n",
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello there,\"}}\n\n",
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" nice to meet you!\"}}\n\n",
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
	"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n",
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
}

func tunedTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   true,
		ReadBufferSize:      32 << 10,
		WriteBufferSize:     32 << 10,
	}
}

func bareProxy(target string) http.Handler {
	u, _ := url.Parse(target)
	return &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.Out.Host = "" },
		Transport:     tunedTransport(),
		FlushInterval: 0,                             // as the gateway's proxy: SSE and unknown lengths flush at once, JSON at its end
		BufferPool:    gateway.NewBufferPool(),       // as the gateway's proxy has, so only the gateway's own work differs
		ErrorLog:      stdlog.New(io.Discard, "", 0), // the gateway's own proxy logs through slog, discarded here too
	}
}

// newGateway builds the gateway over a temp state dir whose anthropic
// order is first (busy or good) then second.
func newGateway(ctx context.Context, upstreamURL, first string) (*gateway.Server, func(), error) {
	return anthropicGateway(ctx, upstreamURL, os.Getenv("LOADTEST_NO_MODULES") == "", func(p *store.Profiles) error {
		p.Profiles["anthropic:first"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: first}
		p.Profiles["anthropic:second"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: keyGood2}
		p.Order["anthropic"] = []string{"anthropic:first", "anthropic:second"}
		return nil
	})
}

// anthropicGateway builds a gateway over a temp state dir whose main agent's
// profiles fill writes, with anthropic served by upstreamURL. The returned
// func closes the gateway and removes the dir.
func anthropicGateway(ctx context.Context, upstreamURL string, modules bool, fill func(*store.Profiles) error) (*gateway.Server, func(), error) {
	dir, err := os.MkdirTemp("", "opensoul-loadtest-")
	if err != nil {
		return nil, nil, err
	}
	st := store.New(dir)
	if err := st.UpdateProfiles("main", fill); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	gw, err := wire(ctx, st, policy.Options{}, modules, gateway.Options{
		Config: gateway.Config{
			Token:        gwToken,
			MaxBodyBytes: 32 << 20,
			Providers:    map[string]gateway.Upstream{"anthropic": {BaseURL: upstreamURL}},
		},
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return gw, func() { gw.Close(); os.RemoveAll(dir) }, nil
}

// wire builds a gateway over st as `opensoul gateway` does: the built-in
// policy with popts, the anthropic module compiled before the first
// request (modules false: none, built-in headers only), compilation garbage
// handed back, and the request log written to nowhere. o supplies the
// config and clock; wire fills in the rest.
func wire(ctx context.Context, st *store.Store, popts policy.Options, modules bool, o gateway.Options) (*gateway.Server, error) {
	engine, err := policy.New(ctx, popts)
	if err != nil {
		return nil, err
	}
	o.Store, o.Selector = st, engine
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) // one line per request, as in production
	if modules {
		host, err := wasm.NewHost(ctx, wasm.Options{NoDiskCache: true})
		if err != nil {
			return nil, err
		}
		reg, errs := wasm.NewRegistry(ctx, host, nil)
		if errs = append(errs, reg.Load(ctx, "anthropic")...); len(errs) > 0 {
			return nil, errs[0]
		}
		o.Modules = reg
	}
	debug.FreeOSMemory() // hand compilation garbage back, as opensoul gateway does
	return gateway.New(o)
}
