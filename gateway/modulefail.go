package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	providers "github.com/opensoul/opensoul/gateway/provider"
	"github.com/opensoul/opensoul/wasm"
)

// moduleUnavailable is the answer when the provider's module failed to
// say how to present a credential (it loops and its breaker skips it, it
// trapped, every instance stayed busy), or nil when the built-in rules
// may present it instead.
//
// They may for a provider in OpenSoul's provider table: its built-in
// presentation is right for its API. A provider the table does not know
// has only the generic Bearer, and its module's headers are there because
// that may be wrong: a module that signs requests keeps its secret off
// the wire, and a header the upstream does not expect gets a 401 that
// would disable a good credential until it changes. So such a request is
// not sent: the client gets 503 naming the module, with Retry-After when
// the breaker says until when, and no credential's state changes.
func (s *Server) moduleUnavailable(provider string, err error) *HTTPError {
	if _, known := providers.Lookup(provider); known {
		return nil
	}
	e := &HTTPError{Code: http.StatusServiceUnavailable, Type: "module_unavailable", Err: err,
		Msg: fmt.Sprintf("opensoul: provider %s has no built-in way to present credentials and its module could not (%v); the request was not sent. `opensoul providers list` shows the module's state", provider, err)}
	var be *wasm.BackoffError
	if errors.As(err, &be) {
		e.RetryAfter = max(be.Until.Sub(s.now()).Round(time.Second), time.Second)
	}
	return e // the module's failure is logged by the registry, once
}
