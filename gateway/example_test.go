package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
	"github.com/opensoul/opensoul/policy"
)

// ExampleNew runs the gateway in front of a stand-in provider: the caller
// presents the gateway token, the gateway presents the stored key. The
// provider echoes the key it got; the gateway masks it on the way back,
// as it does any stored secret in an answer.
func ExampleNew() {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"saw_key":%q}`, r.Header.Get("x-api-key"))
	}))
	defer provider.Close()

	dir, _ := os.MkdirTemp("", "opensoul-example-")
	defer os.RemoveAll(dir)
	st := store.New(dir)
	st.UpdateProfiles("main", func(p *store.Profiles) error {
		p.Profiles["anthropic:default"] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: "sk-ant-api03-example-key-0123456789abcdef"}
		return nil
	})
	engine, _ := policy.New(context.Background(), policy.Options{})
	gw, err := gateway.New(gateway.Options{
		Store:    st,
		Selector: engine,
		Logger:   slog.New(slog.DiscardHandler),
		Config: gateway.Config{
			Token:     "gateway-token",
			Providers: map[string]gateway.Upstream{"anthropic": {BaseURL: provider.URL}},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer gw.Close()
	srv := httptest.NewServer(gw)
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/anthropic/v1/messages", strings.NewReader(`{"model":"claude-sonnet-5"}`))
	req.Header.Set("x-api-key", "gateway-token")
	resp, _ := http.DefaultClient.Do(req)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("x-opensoul-profile"), string(body))
	// Output: 200 anthropic:default {"saw_key":"sk-ant-api03-****************************"}
}
