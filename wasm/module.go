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
	calls    atomic.Int64   // opensoul_call invocations, for tests
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
// are live, or waits for one to come back.
func (m *module) get(ctx context.Context) (*instance, error) {
	select {
	case in := <-m.idle:
		return in, nil
	default:
	}
	select {
	case in := <-m.idle:
		return in, nil
	case m.slots <- struct{}{}:
		in, err := m.instantiate(ctx)
		if err != nil {
			<-m.slots
			return nil, err
		}
		return in, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *module) put(in *instance) { m.idle <- in }

// discard closes an instance that must not be used again.
func (m *module) discard(in *instance) {
	_ = in.mod.Close(context.Background())
	<-m.slots
}

// call sends one JSON request and returns the module's JSON answer. Any
// failure discards the instance, so a bad module never poisons the pool.
func (m *module) call(ctx context.Context, op string, req []byte) ([]byte, error) {
	if m.host.isClosed() {
		return nil, ErrClosed
	}
	in, err := m.get(ctx)
	if err != nil {
		return nil, err
	}
	m.calls.Add(1)
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
			return nil, ctx.Err()
		}
		return nil, err
	}
	m.put(in)
	return out, nil
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
