package wasm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// MaxClassifyBody is how much of an upstream body classify receives.
const MaxClassifyBody = 8 << 10

// envelope is the part every answer shares.
type envelope struct {
	OK    *bool `json:"ok"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// encodeRequest renders {"v":1,"op":op, ...fields of req}.
func encodeRequest(op string, req any) []byte {
	head := `{"v":1,"op":"` + op + `"`
	if req == nil {
		return []byte(head + "}")
	}
	body, err := json.Marshal(req)
	if err != nil || len(body) < 2 || body[0] != '{' {
		panic(fmt.Sprintf("wasm: cannot encode %s request: %v", op, err)) // our own types: a bug
	}
	if len(body) == 2 {
		return []byte(head + "}")
	}
	out := make([]byte, 0, len(head)+len(body))
	out = append(out, head...)
	out = append(out, ',')
	return append(out, body[1:]...)
}

// decodeResponse fills out (which embeds *env) from a module's answer. The
// answer's text never goes into an error: a module may echo a secret.
func decodeResponse(raw []byte, env *envelope, out any) error {
	if err := json.Unmarshal(raw, out); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%w: field %q has the wrong type", ErrBadResponse, te.Field)
		}
		return fmt.Errorf("%w: not a JSON object (%d bytes)", ErrBadResponse, len(raw))
	}
	if env.OK == nil {
		return fmt.Errorf("%w: no \"ok\" field", ErrBadResponse)
	}
	if *env.OK {
		return nil
	}
	if env.Error == nil {
		return fmt.Errorf("%w: \"ok\":false without \"error\"", ErrBadResponse)
	}
	if env.Error.Code == CodeUnsupportedOp {
		return ErrUnsupportedOp
	}
	return &GuestError{Code: clip(env.Error.Code, 64), Message: clip(env.Error.Message, 300)}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

var knownKinds = map[string]bool{KindAPIKey: true, KindSetupToken: true, KindOAuthAccess: true, KindUnknown: true}

var knownReasons = map[string]bool{
	ReasonRateLimit: true, ReasonAuth: true, ReasonBilling: true, ReasonCredentialScope: true,
	ReasonModelNotFound: true, ReasonTimeout: true, ReasonFormat: true, ReasonOK: true, ReasonUnknown: true,
}

// validClientName accepts the client names the gateway gives clients
// (input.request.client.name): lower-case letters, digits and '-'.
func validClientName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validCheck(c CheckResult) error {
	if !knownKinds[c.Kind] {
		return fmt.Errorf("%w: unknown kind %.40q", ErrBadResponse, c.Kind)
	}
	return nil
}

const maxHeaders = 32

func validHeaders(h HeadersResult) error {
	if len(h.Set)+len(h.Remove) > maxHeaders {
		return fmt.Errorf("%w: more than %d headers", ErrBadResponse, maxHeaders)
	}
	for name, v := range h.Set {
		if !validHeaderName(name) {
			return fmt.Errorf("%w: bad header name %.40q", ErrBadResponse, name)
		}
		if strings.ContainsAny(v, "\r\n\x00") || len(v) > 16<<10 {
			return fmt.Errorf("%w: bad value for header %s", ErrBadResponse, name)
		}
	}
	for _, name := range h.Remove {
		if !validHeaderName(name) {
			return fmt.Errorf("%w: bad header name %.40q", ErrBadResponse, name)
		}
	}
	if h.BaseURL != "" {
		u, err := url.Parse(h.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%w: baseUrl is not an http(s) URL without user, query or fragment", ErrBadResponse)
		}
	}
	if h.StripPrefix != "" && (h.StripPrefix[0] != '/' || strings.ContainsAny(h.StripPrefix, "?#\r\n\x00")) {
		return fmt.Errorf("%w: stripPrefix %.40q is not a path", ErrBadResponse, h.StripPrefix)
	}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// listHeaders are merged with what the client sent instead of replaced,
// so an OAuth beta flag does not drop the client's own beta flags.
var listHeaders = map[string]bool{"Anthropic-Beta": true}

// Apply removes, then sets, the result's headers on h. For list headers
// (anthropic-beta) the module's values are merged into the client's.
func (r HeadersResult) Apply(h http.Header) {
	for _, name := range r.Remove {
		h.Del(name)
	}
	for name, v := range r.Set {
		canon := http.CanonicalHeaderKey(name)
		if old := h.Values(canon); listHeaders[canon] && len(old) > 0 {
			h.Set(canon, mergeList(old, v))
			continue
		}
		h.Set(canon, v)
	}
}

func mergeList(old []string, add string) string {
	var out []string
	seen := map[string]bool{}
	for _, s := range append(old, add) {
		for item := range strings.SplitSeq(s, ",") {
			item = strings.TrimSpace(item)
			if item != "" && !seen[item] {
				seen[item] = true
				out = append(out, item)
			}
		}
	}
	return strings.Join(out, ",")
}

// redact removes a secret from text a module wrote.
func redact(s, secret string) string {
	if secret == "" || s == "" {
		return s
	}
	s = strings.ReplaceAll(s, secret, "[redacted]")
	if len(secret) >= 12 { // also a long-enough tail, as in "…abcd1234"
		s = strings.ReplaceAll(s, secret[len(secret)/2:], "[redacted]")
	}
	return s
}

func redactErr(err error, secret string) error {
	var ge *GuestError
	if errors.As(err, &ge) {
		return &GuestError{Code: redact(ge.Code, secret), Message: redact(ge.Message, secret)}
	}
	return err
}
