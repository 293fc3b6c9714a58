package scim

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Waiting for a turn (see Limits.MaxConcurrent).
const (
	slotWait          = 30 * time.Second
	waitersPerSlot    = 8
	slotRetryAfterSec = 5
)

// heavyBody is the body size from which a request counts as heavy.
const heavyBody = 64 << 10

// orgSlots bounds the requests one organization has in progress, so that
// the memory its parallel requests hold (bodies, decoded resources, list
// pages) is bounded: at most MaxConcurrent at once, and of those at most
// one heavy request (see isHeavy), which can hold tens of MiB while it
// runs where a light one holds a few. Requests are only counted once
// authenticated, so the map holds existing organizations only.
type orgSlots struct {
	size int

	mu   sync.Mutex
	orgs map[string]*slots
}

type slots struct {
	turns   chan struct{}
	heavy   chan struct{}
	waiting int // guarded by orgSlots.mu
}

func newOrgSlots(size int) *orgSlots {
	return &orgSlots{size: size, orgs: make(map[string]*slots)}
}

// acquire waits for a turn of org's (and its heavy turn if heavy) and
// returns its release, or false when too many requests already wait or
// the wait is over.
func (o *orgSlots) acquire(ctx context.Context, org string, heavy bool) (func(), bool) {
	o.mu.Lock()
	s := o.orgs[org]
	if s == nil {
		s = &slots{turns: make(chan struct{}, o.size), heavy: make(chan struct{}, 1)}
		o.orgs[org] = s
	}
	if s.waiting >= o.size*waitersPerSlot {
		o.mu.Unlock()
		return nil, false
	}
	s.waiting++
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		s.waiting--
		o.mu.Unlock()
	}()

	timer := time.NewTimer(slotWait)
	defer timer.Stop()
	take := func(c chan struct{}) bool {
		select {
		case c <- struct{}{}:
			return true
		case <-ctx.Done():
		case <-timer.C:
		}
		return false
	}
	// The heavy turn first: a heavy request waiting for it holds no
	// general turn meanwhile.
	if heavy && !take(s.heavy) {
		return nil, false
	}
	if !take(s.turns) {
		if heavy {
			<-s.heavy
		}
		return nil, false
	}
	return func() {
		<-s.turns
		if heavy {
			<-s.heavy
		}
	}, true
}

// isHeavy tells the requests that may hold tens of MiB: anything on
// groups (a group of the maximum membership is 2 MiB stored and 7 MiB as
// JSON, decoded and encoded whole on every read and change) and large
// bodies (decoding and validating costs some 30 times their size).
func isHeavy(method, sub string, contentLength int64) bool {
	if sub == "/v2/Groups" || strings.HasPrefix(sub, "/v2/Groups/") {
		return true
	}
	return method != http.MethodGet && method != http.MethodDelete && (contentLength < 0 || contentLength > heavyBody)
}
