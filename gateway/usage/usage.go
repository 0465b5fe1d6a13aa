// Package usage is what each credential spent: token usage read out of
// provider answers as they pass through the proxy, and (in later files)
// the buckets and quota math built on it.
//
// Extraction has to be cheap and must never hold a stream back, because
// it sits on every answer the gateway forwards. So a Meter does not parse
// the body: it scans the bytes going by for the key "usage" and decodes
// only the small JSON object that follows it. The same scan serves JSON
// bodies and every SSE dialect, since each provider names the object
// "usage" (Anthropic's message_start and message_delta, the final OpenAI
// Chat Completions chunk, the Responses API's response.completed); what
// the fields inside it mean depends on the wire API, which picks the
// extractor. The package is a leaf: it imports nothing from the gateway.
package usage

import (
	"encoding/json"
	"time"
)

// Wire APIs, the same strings as gateway/provider's (request.api in the
// policy input). Repeated here so the package stays a leaf.
const (
	APIAnthropicMessages = "anthropic-messages"
	APIOpenAICompletions = "openai-completions"
	APIOpenAIResponses   = "openai-responses"
)

// Usage is the tokens one answer spent, in Anthropic's terms: Input
// excludes the tokens read from or written to the prompt cache, which are
// counted apart (OpenAI's prompt_tokens and input_tokens include cached
// tokens; the extractors subtract them).
type Usage struct {
	Input      int64 `json:"inputTokens"`
	Output     int64 `json:"outputTokens"`
	CacheRead  int64 `json:"cacheReadTokens"`
	CacheWrite int64 `json:"cacheWriteTokens"`
	// Seen says the answer carried a usage object at all (a stream cut
	// before it, or an error answer, has none).
	Seen bool `json:"-"`
}

// Add adds o's counts to u.
func (u *Usage) Add(o Usage) {
	u.Input += o.Input
	u.Output += o.Output
	u.CacheRead += o.CacheRead
	u.CacheWrite += o.CacheWrite
	u.Seen = u.Seen || o.Seen
}

// Total is every token counted, cached or not.
func (u Usage) Total() int64 { return u.Input + u.Output + u.CacheRead + u.CacheWrite }

// wireUsage is the union of the providers' usage objects. Pointers tell a
// field that is present from one that is not: a later object (a
// message_delta) only replaces the fields it carries.
type wireUsage struct {
	InputTokens      *int64   `json:"input_tokens"`
	OutputTokens     *int64   `json:"output_tokens"`
	CacheRead        *int64   `json:"cache_read_input_tokens"`
	CacheWrite       *int64   `json:"cache_creation_input_tokens"`
	PromptTokens     *int64   `json:"prompt_tokens"`
	CompletionTokens *int64   `json:"completion_tokens"`
	PromptDetails    *details `json:"prompt_tokens_details"`
	InputDetails     *details `json:"input_tokens_details"`
}

type details struct {
	CachedTokens *int64 `json:"cached_tokens"`
}

// extractor folds one usage object into the answer's running usage.
// Providers report cumulative counts (a message_delta's output_tokens is
// the total so far), so fields replace rather than add.
type extractor func(w *wireUsage, u *Usage)

// extractors are keyed by wire API; an answer on a path of no known API
// goes by the fields it carries (guess).
var extractors = map[string]extractor{
	APIAnthropicMessages: anthropicUsage,
	APIOpenAICompletions: chatUsage,
	APIOpenAIResponses:   responsesUsage,
}

func extractorFor(api string) extractor {
	if x, ok := extractors[api]; ok {
		return x
	}
	return guess
}

// anthropicUsage reads Messages usage: input_tokens excludes the cache.
func anthropicUsage(w *wireUsage, u *Usage) {
	set(&u.Input, w.InputTokens)
	set(&u.Output, w.OutputTokens)
	set(&u.CacheRead, w.CacheRead)
	set(&u.CacheWrite, w.CacheWrite)
}

// chatUsage reads Chat Completions usage: prompt_tokens includes the
// cached tokens of prompt_tokens_details.
func chatUsage(w *wireUsage, u *Usage) {
	openAIUsage(w.PromptTokens, w.CompletionTokens, w.PromptDetails, u)
}

// responsesUsage reads Responses usage: input_tokens includes the cached
// tokens of input_tokens_details.
func responsesUsage(w *wireUsage, u *Usage) {
	openAIUsage(w.InputTokens, w.OutputTokens, w.InputDetails, u)
}

func openAIUsage(in, out *int64, d *details, u *Usage) {
	if in == nil && out == nil {
		return
	}
	var cached int64
	if d != nil && d.CachedTokens != nil {
		cached = *d.CachedTokens
	}
	if in != nil {
		u.Input, u.CacheRead = max(*in-cached, 0), cached
	}
	set(&u.Output, out)
}

// guess picks the extractor by the fields an object carries.
func guess(w *wireUsage, u *Usage) {
	switch {
	case w.PromptTokens != nil || w.CompletionTokens != nil:
		chatUsage(w, u)
	case w.InputDetails != nil:
		responsesUsage(w, u)
	default:
		anthropicUsage(w, u)
	}
}

func set(dst *int64, v *int64) {
	if v != nil && *v >= 0 {
		*dst = *v
	}
}

// decode folds the usage object obj into u; it reports whether obj was a
// usage object (a JSON object holding at least one token count).
func decode(obj []byte, x extractor, u *Usage) bool {
	var w wireUsage
	if json.Unmarshal(obj, &w) != nil {
		return false
	}
	if w.InputTokens == nil && w.OutputTokens == nil && w.PromptTokens == nil && w.CompletionTokens == nil &&
		w.CacheRead == nil && w.CacheWrite == nil {
		return false
	}
	x(&w, u)
	u.Seen = true
	return true
}

// Record is one answer a credential served, with what it spent. The
// gateway hands one to its sink when the answer's body is finished with
// (read to the end, or closed early by a client that went away).
type Record struct {
	Time  time.Time // when the request started
	Agent string    // whose request it served
	// Owner is the agent whose store holds the credential that served
	// ("" for a key from the environment or the config): the agent
	// itself for its own profile, main for one it uses of main's. Two
	// agents' own profiles with one id are two credentials.
	Owner    string
	Provider string
	Profile  string
	Model    string // the model that served (a fallback's, when one did)
	Client   string // the calling client's name ("claude-code"), if known
	Status   int
	Usage
}
