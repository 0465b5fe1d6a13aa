package gateway

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// live keeps each agent's snapshot and sessions in memory so that a
// request never reads or parses a state file. It has two parts, each with
// its own lock and goroutine, started by start and stopped by Close:
//
//   - the agent cache (agentCache) loads an agent on first use, polls its
//     files (size, mtime, inode) and reloads what changed, unloads idle
//     agents, and notices credentials whose secret changed;
//   - the journal (journal) holds what the gateway learned (cooldowns,
//     usage, lastGood, session pins) until it is written, batched, through
//     the store's locked updates, so edits made by the CLI meanwhile are
//     kept.
//
// They run apart so that a slow disk (fsync) never delays noticing a
// change made by the CLI.
//
// What the gateway learns is applied to the in-memory snapshots at once
// (the next request sees a new cooldown) and queued in the journal. A
// reload applies again the operations not yet written and those being
// written; one that lands while a write is under way may count those
// twice, so every agent is reloaded once more after such a write. After
// a write no reload overlapped, the cache takes the state files the
// journal wrote as read (their new stamps), when what the journal read
// was what the cache had loaded: the snapshots hold the written ops
// already, and an outside write before or after still shows as a stamp
// the cache has not seen (agentCache.written). The
// journal's lock orders recording against publishing a reloaded snapshot
// (see journal.publish); it is taken before the cache's.
type live struct {
	*agentCache
	*journal
}

func newLive(st *store.Store, log *slog.Logger, now func() time.Time, cd func() Cooldowns) *live {
	errs := &ErrorOnce{}
	j := newJournal(st, log, errs, cd)
	c := newAgentCache(st, log, errs, now, cd, j)
	j.writing, j.written = c.loads.Load, c.written
	return &live{agentCache: c, journal: j}
}

// start polls and flushes every interval until Close.
func (l *live) start(interval time.Duration) {
	l.agentCache.start(interval)
	l.journal.start(interval)
}

// Close stops polling, then the journal after its last flush, so nothing
// learned is lost on shutdown. Safe twice.
func (l *live) Close() {
	l.agentCache.Close()
	l.journal.Close()
}

// record queues ops for owner's state file and applies them to every
// loaded snapshot they concern.
func (l *live) record(owner string, ops ...stateOp) {
	l.journal.add(owner, ops, func() { l.agentCache.apply(owner, ops) })
}

// pinSession sets the session's auto pin in memory and queues the write.
func (l *live) pinSession(agent string, a *agentLive, op sessionOp) {
	l.journal.addSession(agent, op, func() bool { return a.pin(op) })
}

// background runs one goroutine from start until close, which waits for
// it: the shape Server has, shared by the agent cache and the journal.
type background struct {
	stop   context.CancelFunc
	done   chan struct{}
	closed sync.Once
}

func (b *background) start(fn func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	b.stop, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		fn(ctx)
	}()
}

// close stops the goroutine, waits for it, then runs last (when set).
// Safe twice and without start.
func (b *background) close(last func()) {
	b.closed.Do(func() {
		if b.stop != nil {
			b.stop()
			<-b.done
		}
		if last != nil {
			last()
		}
	})
}

// every runs fn each interval until ctx ends, warning when it is slow.
func every(ctx context.Context, log *slog.Logger, interval time.Duration, what string, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			start := time.Now()
			fn()
			if d := time.Since(start); d > 2*time.Second {
				log.Warn("state files are slow", "doing", what, "took", d.Round(time.Millisecond))
			}
		}
	}
}

// logStateError logs a state file error once per key (a path): as an
// error when the file is corrupt or unreadable, else as a warning.
func logStateError(log *slog.Logger, errs *ErrorOnce, key, msg string, err error) {
	if !errs.Changed(key, err) {
		return
	}
	var ce *store.CorruptError
	if errors.As(err, &ce) || errors.Is(err, fs.ErrPermission) {
		log.Error(msg, "err", err)
		return
	}
	log.Warn(msg, "err", err)
}
