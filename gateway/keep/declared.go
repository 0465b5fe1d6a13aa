package keep

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/opensoul/opensoul/gateway/oauth"
)

// Declarer is implemented by Modules that can say which OAuth client
// a provider's module declares in its info answer (wasm.Registry.OAuth):
// the raw JSON of wasm/ABI.md's info "oauth" object, nil when none.
type Declarer interface {
	OAuth(ctx context.Context, provider string) json.RawMessage
}

// Declared caches each provider's module-declared client, decoded once
// per declaration (a module file that changes may declare another). The
// zero value is ready to use.
type Declared struct {
	mu sync.Mutex
	m  map[string]declaredClient
}

type declaredClient struct {
	raw    json.RawMessage
	client oauth.Client
}

// Client is the OAuth client provider's module declares (asking d, which
// loads the module if needed); false when it declares none (or cannot be
// read, which is logged to log once per declaration).
func (dc *Declared) Client(ctx context.Context, d Declarer, provider string, log *slog.Logger) (oauth.Client, bool) {
	raw := d.OAuth(ctx, provider)
	if len(raw) == 0 {
		return oauth.Client{}, false
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if c, ok := dc.m[provider]; ok && bytes.Equal(c.raw, raw) {
		return c.client, !c.client.IsZero()
	}
	var c oauth.Client
	if err := json.Unmarshal(raw, &c); err != nil {
		log.Warn("provider module's oauth declaration is not an OAuth client; ignored", "provider", provider, "err", err)
		c = oauth.Client{}
	}
	if dc.m == nil {
		dc.m = map[string]declaredClient{}
	}
	dc.m[provider] = declaredClient{raw: bytes.Clone(raw), client: c}
	return c, !c.IsZero()
}
