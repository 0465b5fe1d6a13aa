package usage

import "strings"

// Price is what a model charges, in US dollars per million tokens.
type Price struct {
	Input      float64 `json:"input" koanf:"input"`
	Output     float64 `json:"output" koanf:"output"`
	CacheRead  float64 `json:"cacheRead" koanf:"cacheRead"`
	CacheWrite float64 `json:"cacheWrite" koanf:"cacheWrite"`
}

// DefaultPrices are list prices of common models (USD per million
// tokens, late 2025), keyed by model name prefix; config's usage.prices
// adds to and overrides them. A subscription login pays none of this:
// its cost is what the same tokens would cost on an API key.
var DefaultPrices = map[string]Price{
	"claude-opus-4-5":   {Input: 5, Output: 25, CacheRead: 0.5, CacheWrite: 6.25},
	"claude-opus-4":     {Input: 15, Output: 75, CacheRead: 1.5, CacheWrite: 18.75},
	"claude-sonnet-4":   {Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75},
	"claude-3-7-sonnet": {Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75},
	"claude-haiku-4-5":  {Input: 1, Output: 5, CacheRead: 0.1, CacheWrite: 1.25},
	"claude-3-5-haiku":  {Input: 0.8, Output: 4, CacheRead: 0.08, CacheWrite: 1},
	"gpt-5":             {Input: 1.25, Output: 10, CacheRead: 0.125},
	"gpt-5-mini":        {Input: 0.25, Output: 2, CacheRead: 0.025},
	"gpt-5-nano":        {Input: 0.05, Output: 0.4, CacheRead: 0.005},
	"gpt-4.1":           {Input: 2, Output: 8, CacheRead: 0.5},
	"gpt-4.1-mini":      {Input: 0.4, Output: 1.6, CacheRead: 0.1},
	"gpt-4o":            {Input: 2.5, Output: 10, CacheRead: 1.25},
	"gpt-4o-mini":       {Input: 0.15, Output: 0.6, CacheRead: 0.075},
	"o3":                {Input: 2, Output: 8, CacheRead: 0.5},
	"o4-mini":           {Input: 1.1, Output: 4.4, CacheRead: 0.275},
}

// Prices finds a model's price: the longest key that is a prefix of the
// model name (so "claude-sonnet-4" prices "claude-sonnet-4-5-20250929"),
// tried on the whole name and then on what follows a vendor prefix
// ("anthropic/claude-sonnet-4" on OpenRouter).
type Prices map[string]Price

// WithDefaults is DefaultPrices overridden by p.
func (p Prices) WithDefaults() Prices {
	out := make(Prices, len(DefaultPrices)+len(p))
	for k, v := range DefaultPrices {
		out[k] = v
	}
	for k, v := range p {
		out[strings.ToLower(k)] = v
	}
	return out
}

// For returns model's price and whether one is known.
func (p Prices) For(model string) (Price, bool) {
	model = strings.ToLower(model)
	if pr, ok := p.longest(model); ok {
		return pr, true
	}
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		return p.longest(model[i+1:])
	}
	return Price{}, false
}

func (p Prices) longest(model string) (Price, bool) {
	best, found := "", false
	for k := range p {
		if strings.HasPrefix(model, k) && (!found || len(k) > len(best)) {
			best, found = k, true
		}
	}
	return p[best], found
}

// CostMicros is what u costs at price, in millionths of a dollar.
func (pr Price) CostMicros(u Usage) int64 {
	// USD per million tokens × tokens = micro-dollars.
	return int64(pr.Input*float64(u.Input) + pr.Output*float64(u.Output) +
		pr.CacheRead*float64(u.CacheRead) + pr.CacheWrite*float64(u.CacheWrite) + 0.5)
}
