package gateway

import (
	"slices"
	"sync"

	"github.com/opensoul/opensoul/policy"
)

// sessionsSeen remembers, per agent, what the gateway has seen of each
// named session: the client that opened it, when, and how many requests
// it made (input.session.client, started and requests). It is kept in
// memory only (a restart starts the counts again; started then comes from
// sessions.json when the session is stored there) and bounded: past
// maxSeenSessions the least recently used quarter is forgotten.
type sessionsSeen struct {
	mu sync.Mutex
	m  map[string]*sessionSeen
}

type sessionSeen struct {
	client   policy.ClientFacts
	started  int64 // epoch ms of the first request seen
	requests int64
	last     int64 // epoch ms of the latest request, for eviction
}

// maxSeenSessions bounds sessionsSeen per agent: about the sessions one
// agent has open at once, many times over (gateway.sessions.maxPerAgent
// bounds the stored ones to 1000 by default).
const maxSeenSessions = 4096

// SessionVisit is what the gateway knows of a session at one request.
type SessionVisit struct {
	Client   policy.ClientFacts
	Started  int64 // epoch ms; 0 when not known
	Requests int64 // this request included; 0 when not counted
}

// visit counts one request of session id from client at now (ms) and
// returns the session's facts, this request included.
func (s *sessionsSeen) visit(id string, client policy.ClientFacts, now int64) SessionVisit {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*sessionSeen{}
	}
	e := s.m[id]
	if e == nil {
		if len(s.m) >= maxSeenSessions {
			s.evict()
		}
		e = &sessionSeen{client: client, started: now}
		s.m[id] = e
	}
	e.requests++
	e.last = max(e.last, now)
	return SessionVisit{Client: e.client, Started: e.started, Requests: e.requests}
}

// evict forgets the least recently used quarter. Holds mu.
func (s *sessionsSeen) evict() {
	type aged struct {
		id   string
		last int64
	}
	all := make([]aged, 0, len(s.m))
	for id, e := range s.m {
		all = append(all, aged{id, e.last})
	}
	slices.SortFunc(all, func(a, b aged) int { return int(min(max(a.last-b.last, -1), 1)) })
	for _, a := range all[:len(all)/4+1] {
		delete(s.m, a.id)
	}
}

// earliest is the earlier of two epoch-ms starts, 0 meaning unknown: a
// session stored in sessions.json (createdAt) before this gateway saw it
// started then.
func earliest(a, b int64) int64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
