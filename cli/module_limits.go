package cli

import (
	"time"

	"github.com/opensoul/opensoul/wasm"
)

// ModulesConfig bounds provider modules (wasm/ABI.md "Limits"): a module
// whose calls hit the deadline or trap BreakerFailures times in a row is
// skipped for BreakerBackoffMs (doubling while it keeps failing, up to
// 10 minutes or this value if larger), and a call waits at most
// PoolWaitMs for a free instance. Changes apply at the next start.
type ModulesConfig struct {
	PoolWaitMs       int `koanf:"poolWaitMs"`
	BreakerFailures  int `koanf:"breakerFailures"`
	BreakerBackoffMs int `koanf:"breakerBackoffMs"`
}

func defaultModulesConfig() ModulesConfig {
	return ModulesConfig{
		PoolWaitMs:       int(wasm.DefaultPoolWait / time.Millisecond),
		BreakerFailures:  wasm.DefaultBreakerFailures,
		BreakerBackoffMs: int(wasm.DefaultBreakerBackoff / time.Millisecond),
	}
}

func (m ModulesConfig) validate(bad func(key, format string, args ...any)) {
	for k, v := range map[string]int{"poolWaitMs": m.PoolWaitMs, "breakerFailures": m.BreakerFailures, "breakerBackoffMs": m.BreakerBackoffMs} {
		if v <= 0 {
			bad("gateway.modules."+k, "must be positive, got %d", v)
		}
	}
}

// hostOptions returns o with the module limits set.
func (m ModulesConfig) hostOptions(o wasm.Options) wasm.Options {
	o.PoolWait = ms(m.PoolWaitMs)
	o.BreakerFailures = m.BreakerFailures
	o.BreakerBackoff = ms(m.BreakerBackoffMs)
	return o
}
