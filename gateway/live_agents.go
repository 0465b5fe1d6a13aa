package gateway

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// agentCache holds each loaded agent's snapshot and sessions. A goroutine
// started by start polls the agents' files every interval and reloads
// those that changed, applying again what the journal has not written.
type agentCache struct {
	st      *store.Store
	log     *slog.Logger
	errs    *ErrorOnce
	now     func() time.Time
	cd      func() Cooldowns
	journal *journal // its unwritten operations are applied at each reload
	bg      background

	// loadMu serialises first loads and reloads, and guards seen and
	// every agentLive's stamps.
	loadMu sync.Mutex
	seen   map[string]seenCred // profile owner/id → its secret last seen
	loads  atomic.Uint64       // reloads finished (see written); added to under loadMu

	mu     sync.Mutex // guards agents and stale
	agents map[string]*agentLive
	stale  bool // reload every agent at the next poll
}

type agentLive struct {
	snap     atomic.Pointer[Snapshot]
	sessions sessionTable
	stamps   []store.Stamp // of paths(agent), guarded by agentCache.loadMu
	used     atomic.Int64  // unix ns of the last request for the agent
	picks    picks         // when each profile was last handed a request
	seen     sessionsSeen  // named sessions' client, start and request count
}

// agentIdle is how long an agent may go without a request before poll
// unloads it: callers can name any agent, and each loaded one is kept in
// memory and its files checked every poll. Unloading loses nothing: the
// operations not yet written stay queued, and a reload applies them.
const agentIdle = 15 * time.Minute

func newAgentCache(st *store.Store, log *slog.Logger, errs *ErrorOnce, now func() time.Time, cd func() Cooldowns, j *journal) *agentCache {
	return &agentCache{
		st: st, log: log, errs: errs, now: now, cd: cd, journal: j,
		agents: map[string]*agentLive{},
		seen:   map[string]seenCred{},
	}
}

// start polls every interval until Close.
func (c *agentCache) start(interval time.Duration) {
	c.bg.start(func(ctx context.Context) { every(ctx, c.log, interval, "checking", c.poll) })
}

// Close stops polling and waits for a poll under way. Safe twice.
func (c *agentCache) Close() { c.bg.close(nil) }

// markStale has the next poll reload every agent.
func (c *agentCache) markStale() {
	c.mu.Lock()
	c.stale = true
	c.mu.Unlock()
}

// agent returns the agent's live state, loading it on first use, and
// notes the use (poll unloads agents idle for agentIdle).
func (c *agentCache) agent(id string) (*agentLive, error) {
	a, err := c.load(id)
	if err != nil {
		return nil, err
	}
	a.used.Store(c.now().UnixNano())
	return a, nil
}

func (c *agentCache) loaded(id string) *agentLive {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.agents[id]
}

func (c *agentCache) load(id string) (*agentLive, error) {
	if a := c.loaded(id); a != nil {
		return a, nil
	}
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	if a := c.loaded(id); a != nil {
		return a, nil
	}
	a := &agentLive{}
	a.used.Store(c.now().UnixNano()) // not unloaded before its first request returns
	if err := c.reload(id, a); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.agents[id] = a
	c.mu.Unlock()
	return a, nil
}

func (c *agentCache) paths(id string) []string {
	ps := []string{c.st.ProfilesPath(id), c.st.StatePath(id), c.st.SessionsPath(id)}
	if id != store.DefaultAgent {
		ps = append(ps, c.st.ProfilesPath(store.DefaultAgent), c.st.StatePath(store.DefaultAgent))
	}
	return ps
}

// reload reads the agent's files and installs a fresh snapshot with the
// unwritten operations applied. Callers hold loadMu.
func (c *agentCache) reload(id string, a *agentLive) error {
	stamps := store.StampsOf(c.paths(id)...)
	snap, err := LoadSnapshot(c.st, id)
	if err != nil {
		return err
	}
	ss, err := c.st.LoadSessions(id)
	if err != nil {
		return err
	}
	sessions := make(map[string]store.Session, len(ss.Sessions))
	for k, v := range ss.Sessions {
		if v != nil {
			sessions[k] = *v
		}
	}
	c.journal.publish(func(u unwritten) {
		cd := c.cd()
		for _, owner := range []string{id, store.DefaultAgent} {
			for _, op := range u.state(owner) {
				applyToSnapshot(snap, owner, op, cd)
			}
			if id == store.DefaultAgent {
				break
			}
		}
		c.noticeChangedCredentials(snap, u) // after the unwritten ops: one may be the disable
		for _, op := range u.sessions(id) {
			if ss.ResetAfter(op.session, op.at.UnixMilli()) {
				continue
			}
			s := sessions[op.session]
			if op.apply(&s) {
				sessions[op.session] = s
			}
		}
		a.snap.Store(snap)
		a.sessions.replace(sessions)
	})
	a.stamps = stamps
	c.loads.Add(1)
	return nil
}

// written runs after the journal wrote state files (wrote, by owner);
// loads is c.loads before the write. When a reload ran meanwhile it may
// have counted the written ops twice, and every agent is reloaded at the
// next poll. Otherwise each loaded agent takes a written file as read
// when its stamp is the one the write read (w.Before): the snapshot held
// that file and has the written ops applied already, which is what the
// file now holds. A file written by anyone else has a stamp no agent
// took, so the poll still reloads it.
func (c *agentCache) written(loads uint64, wrote map[string]store.Written) {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	if c.loads.Load() != loads {
		c.markStale()
		return
	}
	c.mu.Lock()
	agents := maps.Clone(c.agents)
	c.mu.Unlock()
	for id, a := range agents {
		for i, p := range c.paths(id) {
			for owner, w := range wrote {
				if w.OK && p == c.st.StatePath(owner) && a.stamps[i] == w.Before {
					a.stamps[i] = w.After
				}
			}
		}
	}
}

// noticeChangedCredentials lifts an until-changed disable (auth,
// credential_scope) and a client scope when the profile's secret was
// replaced, recording the lift in the journal. Callers hold loadMu and are
// inside publish.
func (c *agentCache) noticeChangedCredentials(snap *Snapshot, u unwritten) {
	for id, cred := range snap.Profiles {
		key := snap.Owner[id] + "/" + id
		prev, known := c.seen[key]
		sum := sha256.Sum256([]byte(cred.Secret()))
		st, ok := snap.Stats.Lookup(id)
		held := ok && (st.DisabledUntil >= DisabledUntilChanged || st.Scope != "")
		c.seen[key] = seenCred{sum: sum, held: held}
		if !known || prev.sum == sum {
			continue
		}
		if held {
			c.log.Info("credential changed; lifting its disable or client scope", "profile", id, "reason", st.DisabledReason, "scope", st.Scope)
			op := stateOp{profile: id, clear: true, at: c.now()}
			owner := snap.Owner[id]
			u.add(owner, op)
			applyToSnapshot(snap, owner, op, c.cd())
			c.seen[key] = seenCred{sum: sum}
		}
	}
	c.forgetRemoved(snap)
}

// seenCred is what the cache remembers of a profile's credential to see
// it change: a digest of its secret (never the secret itself), and
// whether the profile was last seen disabled until changed or scoped.
type seenCred struct {
	sum  [sha256.Size]byte
	held bool
}

// forgetRemoved drops what was seen of the profiles of snap's agent that
// its files no longer hold, so seen does not grow with every profile
// ever added. A profile last seen disabled until changed (or scoped) is
// remembered: re-added with a new secret, its disable is lifted as if it
// had been replaced in place. Profiles of other owners are left to their
// own agent's reload (an agent's snapshot hides a main profile it
// shadows). Callers hold loadMu.
func (c *agentCache) forgetRemoved(snap *Snapshot) {
	prefix := snap.Agent + "/"
	for key, s := range c.seen {
		id, ok := strings.CutPrefix(key, prefix)
		if !ok || s.held {
			continue
		}
		if _, present := snap.Profiles[id]; !present || snap.Owner[id] != snap.Agent {
			delete(c.seen, key)
		}
	}
}

// applyToSnapshot applies op (for the state file of agent owner) to snap
// in place. Only for snapshots not yet published.
func applyToSnapshot(snap *Snapshot, owner string, op stateOp, cd Cooldowns) {
	if op.recent != "" {
		if snap.Agent == owner {
			snap.Recent = store.NoteRecent(snap.Recent, op.recent, op.at.UnixMilli())
		}
		return
	}
	if op.lastGood {
		if snap.Agent == owner {
			snap.LastGood[op.provider] = op.profile
		}
		return
	}
	if snap.Owner[op.profile] != owner {
		return
	}
	u := snap.Stats.Get(op.profile)
	if u.FailureCounts != nil {
		u.FailureCounts = maps.Clone(u.FailureCounts)
	}
	op.applyStats(&u, cd)
	snap.Stats = snap.Stats.With(op.profile, u)
}

// apply applies ops (for owner's state file) to every loaded snapshot
// they concern, copying them so readers never see a change. The journal
// calls it from add, holding its lock.
func (c *agentCache) apply(owner string, ops []stateOp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cd := c.cd()
	for _, a := range c.agents {
		old := a.snap.Load()
		if !concerns(old, owner, ops) {
			continue
		}
		snap := *old
		// Copy only what the ops change: a success is two ops, one
		// profile's lastUsed and the provider's lastGood, and copying
		// every profile's stats for each cost more than the request.
		if changed := statsChanged(old, owner, ops); changed != nil {
			snap.facts = old.facts.next(changed) // the facts change with the stats only
		}
		if slices.ContainsFunc(ops, func(op stateOp) bool { return op.lastGood }) {
			snap.LastGood = maps.Clone(old.LastGood)
		}
		for _, op := range ops {
			applyToSnapshot(&snap, owner, op, cd)
		}
		a.snap.Store(&snap)
	}
}

// statsChanged lists the profiles whose stats ops (for owner's state
// file) change in snap, nil when none.
func statsChanged(snap *Snapshot, owner string, ops []stateOp) []string {
	var ids []string
	for _, op := range ops {
		if !op.lastGood && op.recent == "" && snap.Owner[op.profile] == owner {
			ids = append(ids, op.profile)
		}
	}
	return ids
}

// concerns says whether any of ops (for owner's state file) changes snap.
func concerns(snap *Snapshot, owner string, ops []stateOp) bool {
	return slices.ContainsFunc(ops, func(op stateOp) bool {
		if op.lastGood || op.recent != "" {
			return snap.Agent == owner
		}
		return snap.Owner[op.profile] == owner
	})
}

// pin sets the session's auto pin in memory, copying the sessions so
// readers never see a change, and says whether it changed anything. The
// journal calls it from addSession, holding its lock.
func (a *agentLive) pin(op sessionOp) bool {
	return a.sessions.update(op.session, op.apply)
}

// sessionTable is an agent's sessions in memory, read by every request
// in a session and changed by pins. Changed in place under its lock: a
// copy per pin made each new session cost a copy of every session the
// agent had (up to gateway.sessions.maxPerAgent, and more between
// reloads), which was most of the gateway's CPU when every request
// started a session.
type sessionTable struct {
	mu sync.RWMutex
	m  map[string]store.Session
}

// get is the session named id, and whether it is known.
func (t *sessionTable) get(id string) (store.Session, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s, ok := t.m[id]
	return s, ok
}

// replace installs m (a reload's sessions); the table owns it from now.
func (t *sessionTable) replace(m map[string]store.Session) {
	t.mu.Lock()
	t.m = m
	t.mu.Unlock()
}

// update applies fn to the session named id (the zero session when it is
// unknown) and keeps the result when fn reports a change.
func (t *sessionTable) update(id string, fn func(*store.Session) bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[id]
	if !fn(&s) {
		return false
	}
	if t.m == nil {
		t.m = map[string]store.Session{}
	}
	t.m[id] = s
	return true
}

// poll unloads agents idle for agentIdle and reloads every other loaded
// agent whose files changed. A file that cannot be read keeps the last
// good snapshot in use.
func (c *agentCache) poll() {
	c.mu.Lock()
	ids := slices.Collect(maps.Keys(c.agents))
	stale := c.stale
	c.stale = false
	c.mu.Unlock()
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	idleSince := c.now().Add(-agentIdle).UnixNano()
	for _, id := range ids {
		a := c.unloadIdle(id, idleSince)
		if a == nil {
			continue
		}
		if !stale && slices.Equal(store.StampsOf(c.paths(id)...), a.stamps) {
			continue
		}
		key := c.st.AgentDir(id)
		if err := c.reload(id, a); err != nil {
			logStateError(c.log, c.errs, key, "keeping the last good state", err)
			continue
		}
		c.errs.Clear(key)
	}
}

// unloadIdle unloads agent id when it has had no request since idleSince
// and returns nil then, else its live state.
func (c *agentCache) unloadIdle(id string, idleSince int64) *agentLive {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.agents[id]
	if a == nil || a.used.Load() < idleSince {
		delete(c.agents, id)
		return nil
	}
	return a
}

// refresh reloads one agent now (after a chat command changed its
// sessions, say).
func (c *agentCache) refresh(id string) error {
	a := c.loaded(id)
	if a == nil {
		_, err := c.agent(id)
		return err
	}
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	return c.reload(id, a)
}

// snapshots returns the current snapshot of every loaded agent.
func (c *agentCache) snapshots() []*Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Snapshot, 0, len(c.agents))
	for _, a := range c.agents {
		out = append(out, a.snap.Load())
	}
	return out
}
