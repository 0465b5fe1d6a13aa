package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/semaphore"
)

// Request bodies are buffered whole (every attempt replays them), so they
// are what a caller can make the gateway hold. Three bounds apply: one
// body is at most MaxBodyBytes; all bodies being read or held at once are
// at most BodyBudgetBytes, taken as the buffer grows, never as the
// Content-Length declares; and a body must arrive within BodyReadTimeout.
const (
	firstBodyChunk    = 16 << 10
	trustAfter        = 1 << 20 // bytes received before a Content-Length is believed
	defaultBodyBudget = 128 << 20
	defaultBudgetWait = 2 * time.Second
	defaultBodyRead   = 60 * time.Second
)

// bodyBudget is the gateway-wide allowance for buffered request bodies.
type bodyBudget struct {
	size int64
	sem  *semaphore.Weighted
}

func newBodyBudget(size int64) *bodyBudget {
	return &bodyBudget{size: size, sem: semaphore.NewWeighted(size)}
}

// heldBody is one request's share of the budget; release returns it.
type heldBody struct {
	b    *bodyBudget
	held int64
}

func (h *heldBody) take(ctx context.Context, n int64, wait time.Duration) bool {
	if h.b.sem.TryAcquire(n) { // the usual case, without a timer per body
		h.held += n
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if h.b.sem.Acquire(ctx, n) != nil {
		return false
	}
	h.held += n
	return true
}

func (h *heldBody) release() {
	if h != nil && h.held > 0 {
		h.b.sem.Release(h.held)
		h.held = 0
	}
}

// readBody buffers the body once so every attempt can replay it. The
// buffer grows as bytes arrive, each growth taken from the budget; the
// read deadline is lifted once the body is in, so it never cuts a
// streaming response.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, rs *reqState) *HTTPError {
	rc := rs.rc
	limit := rc.MaxBodyBytes
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if r.ContentLength > limit {
		return &HTTPError{Code: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("opensoul: request body over gateway.maxBodyBytes (%d bytes)", limit)}
	}
	ctl := http.NewResponseController(w)
	if ctl.SetReadDeadline(time.Now().Add(rc.BodyReadTimeout)) == nil {
		defer ctl.SetReadDeadline(time.Time{})
	}
	rs.heldv = heldBody{b: rc.budget}
	rs.held = &rs.heldv
	body, herr := readGrowing(r, rs.held, limit, rc.BodyBudgetWait)
	if herr != nil {
		rs.held.release()
		return herr
	}
	rs.body = body
	return nil
}

func readGrowing(r *http.Request, held *heldBody, limit int64, wait time.Duration) ([]byte, *HTTPError) {
	want := limit + 1 // one byte more tells an over-long chunked body
	if r.ContentLength >= 0 {
		want = r.ContentLength
	}
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= want {
				if want > limit {
					return nil, &HTTPError{Code: http.StatusRequestEntityTooLarge,
						Msg: fmt.Sprintf("opensoul: request body over gateway.maxBodyBytes (%d bytes)", limit)}
				}
				return buf, nil
			}
			grow := min(max(int64(cap(buf)), firstBodyChunk), want-int64(cap(buf)))
			if r.ContentLength >= 0 && cap(buf) >= trustAfter {
				// The caller has sent a good part: take the rest of the
				// declared length at once rather than copy while doubling.
				grow = want - int64(cap(buf))
			}
			if !held.take(r.Context(), grow, wait) {
				if r.Context().Err() != nil {
					return nil, &HTTPError{Code: 499, Msg: "opensoul: the caller went away", Err: r.Context().Err()}
				}
				return nil, &HTTPError{Code: http.StatusServiceUnavailable, RetryAfter: time.Second,
					Msg: "opensoul: the gateway is holding as many request bodies as gateway.bodyBudgetBytes allows; retry shortly"}
			}
			next := make([]byte, len(buf), int64(cap(buf))+grow)
			copy(next, buf)
			buf = next
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case errors.Is(err, io.EOF):
			return buf, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, &HTTPError{Code: http.StatusRequestTimeout,
				Msg: "opensoul: the request body did not arrive within gateway.timeouts.bodyReadMs", Err: err}
		case err != nil:
			return nil, &HTTPError{Code: http.StatusBadRequest, Msg: "opensoul: could not read the request body", Err: err}
		}
	}
}
