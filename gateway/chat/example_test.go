package chat_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/chat"
	"github.com/opensoul/opensoul/gateway/store"
)

// The gateway calls Intercept for every chat request before it picks a
// credential. `opensoul gateway` wires it like this:
//
//	srv, _ := gateway.New(gateway.Options{...,
//		Chat: func(srv *gateway.Server) (gateway.ChatInterceptor, error) {
//			return chat.New(chat.Options{Store: st, Config: cfg, Selector: engine,
//				Env: srv.Env, Snapshot: srv.Snapshot, Refresh: srv.Refresh, Resolver: srv.Resolver})
//		}})
//
// Here the handler runs alone: "/model opus" sets the session's model.
func ExampleHandler_Intercept() {
	dir, _ := os.MkdirTemp("", "opensoul-example-")
	defer os.RemoveAll(dir)
	st := store.New(dir)
	h, _ := chat.New(chat.Options{Store: st, Now: fixedNow, Config: chat.Config{
		DefaultModel: "anthropic/claude-sonnet-5",
		Models:       map[string]string{"anthropic/claude-sonnet-5": "sonnet", "anthropic/claude-opus-5": "opus"},
		Providers:    map[string]chat.Provider{"anthropic": {BaseURL: "https://api.anthropic.com"}},
	}})

	body := `{"model":"claude-sonnet-5","max_tokens":64,"messages":[{"role":"user","content":"/model opus"}]}`
	w := httptest.NewRecorder()
	handled := h.Intercept(w, httptest.NewRequest("POST", "/anthropic/v1/messages", nil), gateway.ChatRequest{
		Agent: "main", Session: "s1", SessionSet: true, Provider: "anthropic", API: "anthropic-messages",
		Model: "claude-sonnet-5", Body: []byte(body),
	})
	var msg struct{ Content []struct{ Text string } }
	json.Unmarshal(w.Body.Bytes(), &msg)
	ss, _ := st.LoadSessions("main")
	fmt.Println(handled, w.Code)
	fmt.Println(strings.SplitN(msg.Content[0].Text, "\n", 2)[0])
	fmt.Println(ss.Sessions["s1"].ModelOverride)
	// Output:
	// true 200
	// Model for session "s1" (agent main): anthropic/claude-opus-5 (opus). Later requests in this session have their model rewritten to it.
	// anthropic/claude-opus-5
}
