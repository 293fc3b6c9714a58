package scim

import (
	"context"
	"sync"
	"time"
)

// Waiting for a turn (see Limits.MaxConcurrent).
const (
	slotWait          = 30 * time.Second
	waitersPerSlot    = 8
	slotRetryAfterSec = 5
)

// orgSlots bounds the requests one organization has in progress, so that
// the memory its parallel requests hold (bodies, decoded resources, list
// pages) is at most MaxConcurrent times one request's. Requests are only
// counted once authenticated, so the map holds existing organizations
// only.
type orgSlots struct {
	size int

	mu   sync.Mutex
	orgs map[string]*slots
}

type slots struct {
	turns   chan struct{}
	waiting int // guarded by orgSlots.mu
}

func newOrgSlots(size int) *orgSlots {
	return &orgSlots{size: size, orgs: make(map[string]*slots)}
}

// acquire waits for a turn of org's and returns its release, or false
// when too many requests already wait or the wait is over.
func (o *orgSlots) acquire(ctx context.Context, org string) (func(), bool) {
	o.mu.Lock()
	s := o.orgs[org]
	if s == nil {
		s = &slots{turns: make(chan struct{}, o.size)}
		o.orgs[org] = s
	}
	select {
	case s.turns <- struct{}{}:
		o.mu.Unlock()
		return func() { <-s.turns }, true
	default:
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
	select {
	case s.turns <- struct{}{}:
		return func() { <-s.turns }, true
	case <-ctx.Done():
	case <-timer.C:
	}
	return nil, false
}
