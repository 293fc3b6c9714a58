package store

import (
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"
)

// Commit groups: concurrent writes of one kind share a transaction.
//
// Every acknowledged write is synced (or committed, on PostgreSQL) before
// it returns, and one sync costs about what a whole write does otherwise,
// so an IdP that creates users a few at a time gains nothing from its
// parallel requests if each waits for a sync of its own. Worse, creations
// in one organization all rewrite its user counter, so as separate
// transactions they conflict and retry, or must take turns. A commit
// group instead runs the writes that arrive while the previous one
// commits in one transaction, one after the other, and commits them
// together: one sync, no conflicts among them, and each still sees the
// ones before it (a counter-based cap such as max_users stays exact).
//
// A write in a group must be one whose fn is safe to run more than once
// (every Store write is: conflicts retry it from scratch). If any fn of
// a group fails, nothing of the group is kept and each of its writes
// runs again on its own, so that a write gets exactly the outcome it
// would have had alone: one bad request never fails the ones it happened
// to be grouped with.

// maxGroupedWrites bounds one group: its transaction stays far below a
// backend's size limit, and a member waits for at most this many others.
const maxGroupedWrites = 64

// commitGroups holds one queue per group name (for example the user
// creations of one organization). Queues are removed when idle, so the
// map holds only groups with writes in flight.
type commitGroups struct {
	mu sync.Mutex
	m  map[string]*commitQueue
}

type commitQueue struct {
	pending []*groupedWrite // guarded by commitGroups.mu
}

type groupedWrite struct {
	fn func(Txn) error
	// reads is what fn will read; a group reads that of all its
	// writes in one exchange up front.
	reads readSet
	err   error
	ran   bool // err is the write's outcome
	// done receives true when the write has run (err holds its outcome),
	// false when this write's goroutine is to lead the next group.
	done chan bool
}

// updateGrouped is update for writes that may share a transaction with
// concurrent writes of the same group (see above). reads is what fn
// reads, as prefetchSet takes it: a group reads that of all its writes
// in one exchange, and fn's own prefetchSet of it then reads nothing (on
// PostgreSQL one round trip per group, not per write, before the commit).
func (s *Store) updateGrouped(op, group string, reads readSet, fn func(Txn) error) error {
	w := &groupedWrite{fn: fn, reads: reads, done: make(chan bool, 1)}
	g := &s.groups
	g.mu.Lock()
	if g.m == nil {
		g.m = make(map[string]*commitQueue)
	}
	q := g.m[group]
	lead := q == nil
	if lead {
		// No queue means no leader: this write leads.
		q = &commitQueue{}
		g.m[group] = q
	}
	q.pending = append(q.pending, w)
	g.mu.Unlock()
	if !lead && <-w.done {
		return w.err
	}

	// Lead: take the writes queued so far (this one is the oldest), run
	// them, then hand the lead to the oldest write that queued meanwhile.
	g.mu.Lock()
	n := min(len(q.pending), maxGroupedWrites)
	batch := q.pending[:n:n]
	q.pending = append([]*groupedWrite(nil), q.pending[n:]...)
	g.mu.Unlock()

	s.runGroup(op, batch)

	g.mu.Lock()
	if len(q.pending) > 0 {
		q.pending[0].done <- false
	} else {
		delete(g.m, group)
	}
	g.mu.Unlock()
	for _, o := range batch[1:] {
		o.done <- true
	}
	return batch[0].err
}

// runGroup runs batch in one transaction and sets every write's err.
// When a write of it fails, or the transaction grows too big, each write
// runs again on its own. Any other failure (a lost connection, an
// unknown commit outcome, a failing disk) is every write's: running them
// again could apply a commit that did happen twice.
func (s *Store) runGroup(op string, batch []*groupedWrite) {
	// A panic must not strand the writes waiting for this group, nor the
	// group's queue (every later write of the group would wait forever):
	// it fails the writes that have no outcome yet.
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("grouped write panicked", zap.String("op", op), zap.Any("panic", p), zap.Stack("stack"))
			err := fmt.Errorf("store: %s: internal error", op)
			for _, w := range batch {
				if !w.ran {
					w.err = err
				}
			}
		}
	}()
	if len(batch) > 1 {
		var writeFailed bool
		var reads readSet
		for _, w := range batch {
			reads.add(w.reads)
		}
		err := s.update(op, func(txn Txn) error {
			writeFailed = false
			shared, err := prefetchSet(txn, reads)
			if err != nil {
				return err
			}
			for _, w := range batch {
				if err := w.fn(shared); err != nil {
					writeFailed = true
					return err
				}
			}
			return nil
		})
		if err != nil && !writeFailed && !errors.Is(err, ErrTxnTooBig) {
			for _, w := range batch {
				w.err, w.ran = err, true
			}
			return
		}
		if err == nil {
			for _, w := range batch {
				w.ran = true
			}
			return
		}
	}
	for _, w := range batch {
		w.err = s.update(op, w.fn)
		w.ran = true
	}
}
