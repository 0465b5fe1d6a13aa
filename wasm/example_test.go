package wasm_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/opensoul/opensoul/wasm"
)

// A gateway starts one Host and one Registry, then asks the registry on
// every request; answers for a credential already seen come from a cache.
func ExampleRegistry() {
	ctx := context.Background()
	host, err := wasm.NewHost(ctx, wasm.Options{}) // compiled modules cached in the user cache dir
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close(ctx)

	// Built-ins, plus one module from config (providers.acme.module).
	reg, errs := wasm.NewRegistry(ctx, host, map[string]string{"acme": "../testdata/wasm/acme.wasm"})
	for _, err := range errs {
		log.Print(err) // names the file; other providers still work
	}

	// An OpenAI key pasted as an Anthropic credential.
	verdict, err := reg.Check(ctx, "anthropic", wasm.CheckRequest{Type: "api_key", Secret: "sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCD"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(verdict.Valid, verdict.Reason)

	// Present a credential upstream.
	h, err := reg.Headers(ctx, "acme", wasm.HeadersRequest{Type: "api_key", Secret: "acme-123"})
	if err != nil {
		log.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "https://api.acme.example/v1/chat", nil)
	req.Header.Set("Authorization", "Bearer gateway-token")
	h.Apply(req.Header)
	fmt.Println(req.Header.Get("X-Acme-Key"), req.Header.Get("Authorization") == "")

	// Read an upstream failure.
	c, err := reg.Classify(ctx, "anthropic", wasm.ClassifyRequest{Status: 429, Headers: map[string]string{"retry-after": "20"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Reason, c.Failover, *c.RetryAfterMs)
	// Output:
	// false looks like an OpenAI key, not an Anthropic credential
	// acme-123 true
	// rate_limit true 20000
}
