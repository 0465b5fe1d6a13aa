package wasm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// module is one compiled provider module and its pool of instances.
type module struct {
	host     *Host
	provider string
	file     string
	compiled wazero.CompiledModule
	idle     chan *instance // instances ready for use, each owned by nobody
	slots    chan struct{}  // one token per live instance, cap = MaxInstances
	brk      *breaker
	retired  atomic.Bool  // replaced by a new module file: no new calls or instances
	calls    atomic.Int64 // opensoul_call invocations, for tests
}

// instance is one instantiation of a module; used by one goroutine at a time.
type instance struct {
	mod                    api.Module
	mem                    api.Memory
	alloc, free, call, ver api.Function
	stack                  [2]uint64
}

func (m *module) instantiate(ctx context.Context) (*instance, error) {
	ctx, cancel := context.WithTimeout(ctx, m.host.initTimeout())
	defer cancel()
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize")
	mod, err := m.host.rt.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", classifyCallErr(ctx, err))
	}
	in := &instance{
		mod:   mod,
		mem:   mod.Memory(),
		alloc: mod.ExportedFunction("opensoul_alloc"),
		free:  mod.ExportedFunction("opensoul_free"),
		call:  mod.ExportedFunction("opensoul_call"),
		ver:   mod.ExportedFunction("opensoul_abi_version"),
	}
	if in.mem == nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%w: memory", ErrMissingExport)
	}
	return in, nil
}

// get takes an idle instance, or starts one when fewer than MaxInstances
// are live, or waits for one to come back, at most the host's PoolWait:
// a caller never queues behind instances that a looping module holds.
func (m *module) get(ctx context.Context) (*instance, error) {
	select {
	case in := <-m.idle:
		return in, nil
	default:
	}
	wait := time.NewTimer(m.host.poolWait)
	defer wait.Stop()
	select {
	case in := <-m.idle:
		return in, nil
	case m.slots <- struct{}{}:
		in, err := m.instantiate(ctx)
		if err != nil {
			<-m.slots
			if m.retired.Load() {
				return nil, errRetired
			}
			return nil, err
		}
		return in, nil
	case <-wait.C:
		return nil, fmt.Errorf("%w (%d instances, %s)", ErrPoolBusy, cap(m.slots), m.host.poolWait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put returns an instance to the pool, or closes it when the module has
// been retired. Checking again after the send closes an instance that
// raced with retire's drain.
func (m *module) put(in *instance) {
	if m.retired.Load() {
		m.discard(in)
		return
	}
	m.idle <- in
	if m.retired.Load() {
		m.drain()
	}
}

// discard closes an instance that must not be used again.
func (m *module) discard(in *instance) {
	_ = in.mod.Close(context.Background())
	<-m.slots
}

// retire stops a module that a new module file replaced: calls that have
// not started get errRetired (and ask the new module), instances close as
// their calls end. wazero allows closing the compiled module under
// running calls.
func (m *module) retire() {
	if m.retired.Swap(true) {
		return
	}
	m.drain()
	_ = m.compiled.Close(context.Background())
	m.host.forget(m)
}

func (m *module) drain() {
	for {
		select {
		case in := <-m.idle:
			m.discard(in)
		default:
			return
		}
	}
}

// call sends one JSON request and returns the module's JSON answer. Any
// failure discards the instance, so a bad module never poisons the pool.
// While the module's breaker is open, calls fail fast with ErrBackoff.
func (m *module) call(ctx context.Context, op string, req []byte) ([]byte, error) {
	if m.host.isClosed() {
		return nil, ErrClosed
	}
	if m.retired.Load() {
		return nil, errRetired
	}
	if m.brk.blocked(m.host.now()) { // before waiting for an instance
		return nil, m.skipped()
	}
	in, err := m.get(ctx)
	if err != nil {
		return nil, err
	}
	ok, trial := m.brk.allow(m.host.now()) // it may have opened while this call waited
	if !ok {
		m.put(in)
		return nil, m.skipped()
	}
	m.calls.Add(1)
	m.host.calls.Add(1)
	cctx, cancel := ctx, context.CancelFunc(nil)
	if m.host.callTimeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, m.host.callTimeout)
	}
	out, err := in.roundTrip(cctx, req, m.host.maxResponse)
	if cancel != nil {
		cancel()
	}
	if err != nil {
		m.discard(in)
		if ctx.Err() != nil { // the caller gave up; not the module's fault
			m.record(trial, ctx.Err())
			return nil, ctx.Err()
		}
	} else {
		m.put(in)
	}
	m.record(trial, err)
	return out, err
}

// record feeds a call's outcome to the breaker. A retired module's breaker
// no longer speaks for the provider (the host forgot it).
func (m *module) record(trial bool, err error) {
	c, b := m.brk.done(m.host.now(), trial, err, m.provider, m.file)
	if !m.retired.Load() {
		m.host.breakerChanged(c, b)
	}
}

// skipped is the error of a call the breaker refused.
func (m *module) skipped() error {
	if b := m.brk.state(); b != nil {
		return &BackoffError{Backoff: *b}
	}
	return ErrBackoff
}

func (in *instance) abiVersion(ctx context.Context, d time.Duration) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := in.ver.CallWithStack(ctx, in.stack[:]); err != nil {
		return 0, classifyCallErr(ctx, err)
	}
	return int32(uint32(in.stack[0])), nil
}

func (in *instance) roundTrip(ctx context.Context, req []byte, maxResp int) ([]byte, error) {
	s := in.stack[:]
	s[0] = uint64(len(req))
	if err := in.alloc.CallWithStack(ctx, s); err != nil {
		return nil, fmt.Errorf("opensoul_alloc: %w", classifyCallErr(ctx, err))
	}
	reqPtr := uint32(s[0])
	if reqPtr == 0 || !in.mem.Write(reqPtr, req) {
		return nil, fmt.Errorf("%w: opensoul_alloc(%d) returned %#x, outside memory", ErrBadResponse, len(req), reqPtr)
	}
	s[0], s[1] = uint64(reqPtr), uint64(len(req))
	if err := in.call.CallWithStack(ctx, s); err != nil {
		return nil, fmt.Errorf("opensoul_call: %w", classifyCallErr(ctx, err))
	}
	ptr, n := uint32(s[0]>>32), uint32(s[0])
	if int64(n) > int64(maxResp) {
		return nil, fmt.Errorf("%w: %d bytes, cap %d", ErrResponseTooLarge, n, maxResp)
	}
	view, ok := in.mem.Read(ptr, n)
	if !ok || n == 0 {
		return nil, fmt.Errorf("%w: result [%#x, +%d) is outside memory or empty", ErrBadResponse, ptr, n)
	}
	out := append([]byte(nil), view...)
	for _, f := range [][2]uint64{{uint64(ptr), uint64(n)}, {uint64(reqPtr), uint64(len(req))}} {
		s[0], s[1] = f[0], f[1]
		if err := in.free.CallWithStack(ctx, s); err != nil {
			return nil, fmt.Errorf("opensoul_free: %w", classifyCallErr(ctx, err))
		}
	}
	return out, nil
}

// classifyCallErr maps a wazero call error to ErrDeadline or ErrTrap.
func classifyCallErr(ctx context.Context, err error) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			return ErrDeadline
		}
		return fmt.Errorf("%w: exited with code %d", ErrTrap, exit.ExitCode())
	}
	if ctx.Err() != nil {
		return ErrDeadline
	}
	return fmt.Errorf("%w: %v", ErrTrap, err)
}
