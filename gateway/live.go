package gateway

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// live keeps each agent's snapshot and sessions in memory so that a
// request never reads or parses a state file. One goroutine polls the
// files (size, mtime, inode) and reloads what changed; another writes what
// the gateway learned, batched, through the store's locked updates, so
// edits made by the CLI meanwhile are kept. They are separate so that a
// slow disk (fsync) never delays noticing a change made by the CLI.
//
// What the gateway learns is applied to the in-memory snapshots at once
// (the next request sees a new cooldown) and queued as operations. A
// reload applies again the operations not yet written and those being
// written; one that lands while a write is under way may count those
// twice, so every agent is reloaded once more after each write.
type live struct {
	st  *store.Store
	log *slog.Logger
	now func() time.Time
	cd  func() Cooldowns

	loadMu  sync.Mutex // serialises first loads and reloads
	flushMu sync.Mutex // serialises flushes: one returning means all is written

	mu       sync.Mutex // guards the fields below
	agents   map[string]*agentLive
	pending  map[string][]stateOp        // file agent → ops for its auth-state.json
	sessOps  map[string][]sessionOp      // agent → ops for its sessions.json
	inflight map[string][]stateOp        // ops being written now
	sessIn   map[string][]sessionOp      // session ops being written now
	stale    bool                        // reload every agent at the next poll
	lastErrs map[string]string           // path → last load error logged
	seen     map[string]store.Credential // profile owner/id → credential last seen
}

type agentLive struct {
	snap     atomic.Pointer[Snapshot]
	sessions atomic.Pointer[map[string]store.Session]
	stamps   map[string]fileStamp // guarded by live.loadMu
	used     atomic.Int64         // unix ns of the last request for the agent
	picks    picks                // when each profile was last handed a request
}

// agentIdle is how long an agent may go without a request before poll
// unloads it: callers can name any agent, and each loaded one is kept in
// memory and its files checked every poll. Unloading loses nothing: the
// operations not yet written stay queued, and a reload applies them.
const agentIdle = 15 * time.Minute

type fileStamp struct {
	size  int64
	mtime int64
	ino   uint64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

// stateOp is one thing learned about a profile, or an agent's lastGood.
type stateOp struct {
	profile    string
	provider   string // set for lastGood ops
	lastGood   bool   // record profile as lastGood[provider]
	success    bool
	clear      bool // the credential changed: lift an until-changed disable
	reason     string
	model      string
	retryAfter time.Duration
	at         time.Time
}

func (op stateOp) applyStats(u *store.UsageStats, cd Cooldowns) {
	switch {
	case op.clear:
		if u.DisabledUntil >= DisabledUntilChanged {
			u.DisabledUntil, u.DisabledReason = 0, ""
		}
	case op.success:
		ApplySuccess(u, op.at)
	default:
		ApplyFailure(u, op.reason, op.model, op.retryAfter, op.at, cd)
	}
}

func (op stateOp) applyState(st *store.State, cd Cooldowns) {
	if op.lastGood {
		st.LastGood[op.provider] = op.profile
		return
	}
	u := st.UsageStats[op.profile]
	if u == nil {
		u = &store.UsageStats{}
		st.UsageStats[op.profile] = u
	}
	op.applyStats(u, cd)
}

// sessionOp sets a session's auto pin unless the user pinned meanwhile.
type sessionOp struct {
	session string
	profile string
	at      time.Time
}

func (op sessionOp) apply(s *store.Session) bool {
	if s.AuthProfileOverrideSource == store.PinUser || s.AuthProfileOverride == op.profile {
		return false
	}
	if s.UpdatedAt > op.at.UnixMilli() {
		return false // changed since (/model default, say): not ours to pin
	}
	s.AuthProfileOverride, s.AuthProfileOverrideSource = op.profile, store.PinAuto
	if s.CreatedAt == 0 {
		s.CreatedAt = op.at.UnixMilli()
	}
	s.UpdatedAt = op.at.UnixMilli()
	return true
}

func newLive(st *store.Store, log *slog.Logger, now func() time.Time, cd func() Cooldowns) *live {
	return &live{
		st: st, log: log, now: now, cd: cd,
		agents:   map[string]*agentLive{},
		pending:  map[string][]stateOp{},
		sessOps:  map[string][]sessionOp{},
		lastErrs: map[string]string{},
		seen:     map[string]store.Credential{},
	}
}

// agent returns the agent's live state, loading it on first use, and
// notes the use (poll unloads agents idle for agentIdle).
func (l *live) agent(id string) (*agentLive, error) {
	a, err := l.load(id)
	if err != nil {
		return nil, err
	}
	a.used.Store(l.now().UnixNano())
	return a, nil
}

func (l *live) load(id string) (*agentLive, error) {
	l.mu.Lock()
	a := l.agents[id]
	l.mu.Unlock()
	if a != nil {
		return a, nil
	}
	l.loadMu.Lock()
	defer l.loadMu.Unlock()
	l.mu.Lock()
	a = l.agents[id]
	l.mu.Unlock()
	if a != nil {
		return a, nil
	}
	a = &agentLive{}
	a.used.Store(l.now().UnixNano()) // not unloaded before its first request returns
	if err := l.reload(id, a); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.agents[id] = a
	l.mu.Unlock()
	return a, nil
}

func (l *live) paths(id string) []string {
	ps := []string{l.st.ProfilesPath(id), l.st.StatePath(id), l.st.SessionsPath(id)}
	if id != store.DefaultAgent {
		ps = append(ps, l.st.ProfilesPath(store.DefaultAgent), l.st.StatePath(store.DefaultAgent))
	}
	return ps
}

// reload reads the agent's files and installs a fresh snapshot with the
// unwritten operations applied. Callers hold loadMu.
func (l *live) reload(id string, a *agentLive) error {
	stamps := map[string]fileStamp{}
	for _, p := range l.paths(id) {
		stamps[p] = stampOf(p)
	}
	snap, err := LoadSnapshot(l.st, id)
	if err != nil {
		return err
	}
	ss, err := l.st.LoadSessions(id)
	if err != nil {
		return err
	}
	sessions := make(map[string]store.Session, len(ss.Sessions))
	for k, v := range ss.Sessions {
		if v != nil {
			sessions[k] = *v
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cd := l.cd()
	for _, owner := range []string{id, store.DefaultAgent} {
		for _, op := range slices.Concat(l.inflight[owner], l.pending[owner]) {
			applyToSnapshot(snap, owner, op, cd)
		}
		if id == store.DefaultAgent {
			break
		}
	}
	l.noticeChangedCredentials(snap) // after the unwritten ops: one may be the disable
	for _, op := range slices.Concat(l.sessIn[id], l.sessOps[id]) {
		if ss.ResetAfter(op.session, op.at.UnixMilli()) {
			continue
		}
		s := sessions[op.session]
		if op.apply(&s) {
			sessions[op.session] = s
		}
	}
	a.snap.Store(snap)
	a.sessions.Store(&sessions)
	a.stamps = stamps
	return nil
}

// noticeChangedCredentials lifts an until-changed disable (auth,
// credential_scope) when the profile's secret was replaced. Holds mu.
func (l *live) noticeChangedCredentials(snap *Snapshot) {
	for id, c := range snap.Profiles {
		key := snap.Owner[id] + "/" + id
		prev, known := l.seen[key]
		l.seen[key] = c
		if !known || prev.Secret() == c.Secret() {
			continue
		}
		if u, ok := snap.Stats[id]; ok && u.DisabledUntil >= DisabledUntilChanged {
			l.log.Info("credential changed; lifting its disable", "profile", id, "reason", u.DisabledReason)
			op := stateOp{profile: id, clear: true, at: l.now()}
			owner := snap.Owner[id]
			l.pending[owner] = append(l.pending[owner], op)
			applyToSnapshot(snap, owner, op, l.cd())
		}
	}
}

// applyToSnapshot applies op (for the state file of agent owner) to snap
// in place. Only for snapshots not yet published.
func applyToSnapshot(snap *Snapshot, owner string, op stateOp, cd Cooldowns) {
	if op.lastGood {
		if snap.Agent == owner {
			snap.LastGood[op.provider] = op.profile
		}
		return
	}
	if snap.Owner[op.profile] != owner {
		return
	}
	u := snap.Stats[op.profile]
	if u.FailureCounts != nil {
		u.FailureCounts = maps.Clone(u.FailureCounts)
	}
	op.applyStats(&u, cd)
	snap.Stats[op.profile] = u
}

// record queues op for owner's state file and applies it to every loaded
// snapshot it concerns, copying them so readers never see a change.
func (l *live) record(owner string, ops ...stateOp) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending[owner] = append(l.pending[owner], ops...)
	cd := l.cd()
	for _, a := range l.agents {
		old := a.snap.Load()
		touched := false
		for _, op := range ops {
			if (op.lastGood && old.Agent == owner) || (!op.lastGood && old.Owner[op.profile] == owner) {
				touched = true
			}
		}
		if !touched {
			continue
		}
		snap := *old
		snap.facts = &factsMemo{} // the facts change with the stats
		snap.Stats = maps.Clone(old.Stats)
		snap.LastGood = maps.Clone(old.LastGood)
		for _, op := range ops {
			applyToSnapshot(&snap, owner, op, cd)
		}
		a.snap.Store(&snap)
	}
}

// pinSession sets the session's auto pin in memory and queues the write.
func (l *live) pinSession(agent string, a *agentLive, op sessionOp) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *a.sessions.Load()
	s := old[op.session]
	if !op.apply(&s) {
		return
	}
	m := maps.Clone(old)
	m[op.session] = s
	a.sessions.Store(&m)
	l.sessOps[agent] = append(l.sessOps[agent], op)
}

// run polls and flushes every interval until ctx ends, then flushes once
// more so nothing learned is lost on shutdown.
func (l *live) run(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	wg.Go(func() { l.every(ctx, interval, "checking", l.poll) })
	wg.Go(func() { l.every(ctx, interval, "writing", l.flush) })
	wg.Wait()
	l.flush()
}

// every runs fn each interval until ctx ends, warning when it is slow.
func (l *live) every(ctx context.Context, interval time.Duration, what string, fn func()) {
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
				l.log.Warn("state files are slow", "doing", what, "took", d.Round(time.Millisecond))
			}
		}
	}
}

// flush writes the queued operations. A write that fails (a corrupt file,
// a full disk) is logged and its operations kept for the next try.
func (l *live) flush() {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	pending, sessOps := l.pending, l.sessOps
	if len(pending) == 0 && len(sessOps) == 0 {
		l.mu.Unlock()
		return
	}
	l.pending, l.sessOps = map[string][]stateOp{}, map[string][]sessionOp{}
	l.inflight, l.sessIn = pending, sessOps
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.inflight, l.sessIn, l.stale = nil, nil, true
		l.mu.Unlock()
	}()
	cd := l.cd()
	failed := map[string][]stateOp{}
	for owner, ops := range pending {
		err := l.st.UpdateState(owner, func(st *store.State) error {
			for _, op := range ops {
				op.applyState(st, cd)
			}
			return nil
		})
		if err != nil {
			l.logOnce(l.st.StatePath(owner), "cannot write what the gateway learned", err)
			failed[owner] = ops
		}
	}
	failedSess := map[string][]sessionOp{}
	for agent, ops := range sessOps {
		err := l.st.UpdateSessions(agent, func(ss *store.Sessions) error {
			changed := false
			for _, op := range ops {
				if ss.ResetAfter(op.session, op.at.UnixMilli()) {
					continue // learned before a /new or reset
				}
				s := ss.Sessions[op.session]
				if s == nil {
					s = &store.Session{}
				}
				if op.apply(s) {
					ss.Sessions[op.session], changed = s, true
				}
			}
			if !changed {
				return store.NoChange
			}
			return nil
		})
		if err != nil {
			l.logOnce(l.st.SessionsPath(agent), "cannot write session pins", err)
			failedSess[agent] = ops
		}
	}
	if len(failed) == 0 && len(failedSess) == 0 {
		return
	}
	l.mu.Lock()
	for k, ops := range failed {
		l.pending[k] = append(ops, l.pending[k]...)
	}
	for k, ops := range failedSess {
		l.sessOps[k] = append(ops, l.sessOps[k]...)
	}
	l.mu.Unlock()
}

// poll unloads agents idle for agentIdle and reloads every other loaded
// agent whose files changed. A file that cannot be read keeps the last
// good snapshot in use.
func (l *live) poll() {
	l.mu.Lock()
	ids := slices.Collect(maps.Keys(l.agents))
	stale := l.stale
	l.stale = false
	l.mu.Unlock()
	l.loadMu.Lock()
	defer l.loadMu.Unlock()
	idleSince := l.now().Add(-agentIdle).UnixNano()
	for _, id := range ids {
		l.mu.Lock()
		a := l.agents[id]
		idle := a.used.Load() < idleSince
		if idle {
			delete(l.agents, id)
		}
		l.mu.Unlock()
		if idle {
			continue
		}
		changed := stale
		for _, p := range l.paths(id) {
			if stampOf(p) != a.stamps[p] {
				changed = true
				break
			}
		}
		if !changed {
			continue
		}
		if err := l.reload(id, a); err != nil {
			l.logOnce(l.st.AgentDir(id), "keeping the last good state", err)
			continue
		}
		l.mu.Lock()
		delete(l.lastErrs, l.st.AgentDir(id))
		l.mu.Unlock()
	}
}

// refresh reloads one agent now (after a chat command changed its
// sessions, say).
func (l *live) refresh(id string) error {
	l.mu.Lock()
	a := l.agents[id]
	l.mu.Unlock()
	if a == nil {
		_, err := l.agent(id)
		return err
	}
	l.loadMu.Lock()
	defer l.loadMu.Unlock()
	return l.reload(id, a)
}

func (l *live) logOnce(key, msg string, err error) {
	l.mu.Lock()
	dup := l.lastErrs[key] == err.Error()
	l.lastErrs[key] = err.Error()
	l.mu.Unlock()
	if !dup {
		var ce *store.CorruptError
		if errors.As(err, &ce) || errors.Is(err, fs.ErrPermission) {
			l.log.Error(msg, "err", err)
			return
		}
		l.log.Warn(msg, "err", err)
	}
}

// snapshots returns the current snapshot of every loaded agent.
func (l *live) snapshots() []*Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Snapshot, 0, len(l.agents))
	for _, a := range l.agents {
		out = append(out, a.snap.Load())
	}
	return out
}
