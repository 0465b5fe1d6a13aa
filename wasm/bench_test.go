package wasm

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkCall is one pooled call into a Go guest (anthropic check), with
// the per-call deadline in force and without it. p50-ns is the median.
func BenchmarkCall(b *testing.B) {
	for _, bc := range []struct {
		name    string
		timeout time.Duration
	}{{"deadline", DefaultCallTimeout}, {"no-deadline", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			h, _ := newTestHost(b, Options{CallTimeout: bc.timeout})
			ctx := context.Background()
			r, _ := NewRegistry(ctx, h, nil)
			if errs := r.Load(ctx, "anthropic"); len(errs) > 0 {
				b.Fatal(errs)
			}
			m := r.entry("anthropic").mod
			req := encodeRequest(OpCheck, CheckRequest{Type: "api_key", Secret: anthropicKey, Now: 1})
			durs := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for range b.N {
				t := time.Now()
				if _, err := m.call(ctx, OpCheck, req); err != nil {
					b.Fatal(err)
				}
				durs = append(durs, time.Since(t))
			}
			b.StopTimer()
			if c := cpuTime(); c > 0 {
				b.ReportMetric(float64((c-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
			}
			slices.Sort(durs)
			b.ReportMetric(float64(durs[len(durs)/2].Nanoseconds()), "p50-ns")
		})
	}
}

// reportCPU adds the process CPU time per op since start: on a shared
// machine wall time says more about the neighbours than about the code.
func reportCPU(b *testing.B, start time.Duration) {
	if cpu := cpuTime(); cpu > 0 {
		b.ReportMetric(float64((cpu-start).Milliseconds())/float64(b.N), "cpu-ms/op")
	}
}

// BenchmarkRegistry is the gateway's hot path: a credential already seen.
func BenchmarkRegistry(b *testing.B) {
	r := builtins(b)
	ctx := context.Background()
	b.Run("cached-check", func(b *testing.B) {
		req := CheckRequest{Type: "api_key", Secret: anthropicKey, Now: 1}
		r.Check(ctx, "anthropic", req)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Check(ctx, "anthropic", req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-headers", func(b *testing.B) {
		req := HeadersRequest{Type: "token", Secret: setupToken}
		r.Headers(ctx, "anthropic", req)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Headers(ctx, "anthropic", req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("classify-8k", func(b *testing.B) {
		body := `{"type":"error","error":{"type":"rate_limit_error","message":"` + strings.Repeat("slow down ", 900)[:8000] + `"}}`
		req := ClassifyRequest{Status: 429, Headers: map[string]string{"retry-after": "3"}, Body: body}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Classify(ctx, "anthropic", req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("classify", func(b *testing.B) {
		req := ClassifyRequest{Status: 429, Headers: map[string]string{"retry-after": "3"}, Body: `{"type":"error","error":{"type":"rate_limit_error"}}`}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Classify(ctx, "anthropic", req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLoadBuiltins starts a host and loads the three built-ins, with
// an empty cache dir (cold) and a filled one (warm).
func BenchmarkLoadBuiltins(b *testing.B) {
	load := func(b *testing.B, dir string, providers ...string) {
		ctx := context.Background()
		h, err := NewHost(ctx, Options{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		r, _ := NewRegistry(ctx, h, nil)
		if errs := r.Load(ctx, providers...); len(errs) > 0 {
			b.Fatal(errs)
		}
		h.Close(ctx)
	}
	b.Run("cold", func(b *testing.B) {
		cpu := cpuTime()
		for b.Loop() {
			load(b, b.TempDir())
		}
		reportCPU(b, cpu)
	})
	b.Run("warm", func(b *testing.B) {
		dir := b.TempDir()
		load(b, dir)
		cpu := cpuTime()
		for b.Loop() {
			load(b, dir)
		}
		reportCPU(b, cpu)
	})
	b.Run("warm-one", func(b *testing.B) {
		dir := b.TempDir()
		load(b, dir)
		cpu := cpuTime()
		for b.Loop() {
			load(b, dir, "anthropic")
		}
		reportCPU(b, cpu)
	})
}
