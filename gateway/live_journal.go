package gateway

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// journal is what the gateway learned and has not written yet: state
// operations per state file (cooldowns, usage, lastGood) and session pins
// per agent. A goroutine started by start writes them every interval,
// batched, through the store's locked updates; Close stops it and waits
// for the last flush.
type journal struct {
	st   *store.Store
	log  *slog.Logger
	errs *ErrorOnce
	cd   func() Cooldowns
	// writing runs before each write and returns a token that written,
	// run after it with what each owner's state write wrote, gets back:
	// the agent cache counts its loads, so that it can tell whether one
	// ran during the write (it may have counted the write's ops twice:
	// every agent is reloaded), and else takes the files it wrote as
	// its own (see agentCache.written).
	writing func() uint64
	written func(token uint64, state map[string]store.Written)
	bg      background

	flushMu sync.Mutex // serialises flushes: one returning means all is written

	// mu guards the queues, and is held while what is recorded is applied
	// in memory and while a reloaded snapshot is published (publish), so
	// that every operation reaches every snapshot exactly once.
	mu       sync.Mutex
	pending  map[string][]stateOp   // file agent → ops for its auth-state.json
	sessOps  map[string][]sessionOp // agent → ops for its sessions.json
	inflight map[string][]stateOp   // ops being written now
	sessIn   map[string][]sessionOp // session ops being written now
}

func newJournal(st *store.Store, log *slog.Logger, errs *ErrorOnce, cd func() Cooldowns) *journal {
	return &journal{
		st: st, log: log, errs: errs, cd: cd,
		writing: func() uint64 { return 0 },
		written: func(uint64, map[string]store.Written) {},
		pending: map[string][]stateOp{},
		sessOps: map[string][]sessionOp{},
	}
}

// start flushes every interval until Close.
func (j *journal) start(interval time.Duration) {
	j.bg.start(func(ctx context.Context) { every(ctx, j.log, interval, "writing", j.flush) })
}

// Close stops the flushing goroutine and flushes once more. Safe twice.
func (j *journal) Close() { j.bg.close(j.flush) }

// add queues ops for owner's state file; apply (which updates the
// in-memory snapshots) runs before any other add or publish.
func (j *journal) add(owner string, ops []stateOp, apply func()) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pending[owner] = append(j.pending[owner], ops...)
	apply()
}

// addSession queues op for the agent's sessions file when apply (which
// updates the in-memory sessions) says it changed something.
func (j *journal) addSession(agent string, op sessionOp, apply func() bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if apply() {
		j.sessOps[agent] = append(j.sessOps[agent], op)
	}
}

// unwritten is the journal as publish shows it: the operations being
// written and those queued, in the order they were learned.
type unwritten struct{ j *journal }

func (u unwritten) state(owner string) []stateOp {
	return slices.Concat(u.j.inflight[owner], u.j.pending[owner])
}

func (u unwritten) sessions(agent string) []sessionOp {
	return slices.Concat(u.j.sessIn[agent], u.j.sessOps[agent])
}

// add queues op for owner's state file (learned while reloading).
func (u unwritten) add(owner string, op stateOp) {
	u.j.pending[owner] = append(u.j.pending[owner], op)
}

// publish runs fn with the journal held still: a snapshot fn installs
// with every unwritten operation applied misses none, and each one
// recorded later is applied to it by add.
func (j *journal) publish(fn func(unwritten)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fn(unwritten{j})
}

// flush writes the queued operations. A write that fails (a corrupt file,
// a full disk) is logged and its operations kept for the next try.
func (j *journal) flush() {
	j.flushMu.Lock()
	defer j.flushMu.Unlock()
	state, sess := j.take()
	if len(state) == 0 && len(sess) == 0 {
		return
	}
	token := j.writing()
	failed, wrote := j.writeState(state)
	j.requeue(failed, j.writeSessions(sess))
	j.written(token, wrote)
}

// take moves the queued operations to in flight and returns them.
func (j *journal) take() (map[string][]stateOp, map[string][]sessionOp) {
	j.mu.Lock()
	defer j.mu.Unlock()
	state, sess := j.pending, j.sessOps
	if len(state) == 0 && len(sess) == 0 {
		return nil, nil
	}
	j.pending, j.sessOps = map[string][]stateOp{}, map[string][]sessionOp{}
	j.inflight, j.sessIn = state, sess
	return state, sess
}

// requeue puts the operations whose write failed back in front of those
// learned meanwhile, and ends the flight.
func (j *journal) requeue(state map[string][]stateOp, sess map[string][]sessionOp) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for k, ops := range state {
		j.pending[k] = append(ops, j.pending[k]...)
	}
	for k, ops := range sess {
		j.sessOps[k] = append(ops, j.sessOps[k]...)
	}
	j.inflight, j.sessIn = nil, nil
}

// writeState applies each owner's operations to its state file and
// returns those that could not be written, and what was written.
func (j *journal) writeState(byOwner map[string][]stateOp) (failed map[string][]stateOp, wrote map[string]store.Written) {
	cd := j.cd()
	failed, wrote = map[string][]stateOp{}, map[string]store.Written{}
	for owner, ops := range byOwner {
		w, err := j.st.UpdateStateStamped(owner, func(st *store.State) error {
			for _, op := range ops {
				op.applyState(st, cd)
			}
			return nil
		})
		if err != nil {
			logStateError(j.log, j.errs, j.st.StatePath(owner), "cannot write what the gateway learned", err)
			failed[owner] = ops
			continue
		}
		wrote[owner] = w
	}
	return failed, wrote
}

// writeSessions applies each agent's session pins to its sessions file
// and returns those that could not be written.
func (j *journal) writeSessions(byAgent map[string][]sessionOp) map[string][]sessionOp {
	failed := map[string][]sessionOp{}
	for agent, ops := range byAgent {
		err := j.st.UpdateSessions(agent, func(ss *store.Sessions) error { return applySessionOps(ss, ops) })
		if err != nil {
			logStateError(j.log, j.errs, j.st.SessionsPath(agent), "cannot write session pins", err)
			failed[agent] = ops
		}
	}
	return failed
}

// applySessionOps applies ops to a sessions file being updated, skipping
// those learned before a reset of their session; store.NoChange when
// none changed anything.
func applySessionOps(ss *store.Sessions, ops []sessionOp) error {
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
	scope      string // a credential_scope failure that scopes the profile to this client
	at         time.Time
	tag        string // the failing credential's store.Credential.Tag
	recent     string // provider/model asked for: noted in the agent's RecentModels
}

func (op stateOp) applyStats(u *store.UsageStats, cd Cooldowns) {
	switch {
	case op.clear:
		if u.DisabledUntil >= DisabledUntilChanged {
			u.DisabledUntil, u.DisabledReason = 0, ""
		}
		u.Scope = "" // a new secret may not be limited
	case op.success:
		ApplySuccess(u, op.at)
	default:
		if op.scope != "" {
			ApplyScope(u, op.scope, op.at, cd)
		} else {
			ApplyFailure(u, op.reason, op.model, op.retryAfter, op.at, cd)
		}
		if op.tag != "" && recordsOnProfile(op.reason) {
			u.SecretTag = op.tag
		}
	}
}

func (op stateOp) applyState(st *store.State, cd Cooldowns) {
	if op.recent != "" {
		st.NoteRecentModel(op.recent, op.at.UnixMilli())
		return
	}
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
