package store

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// What keeps throttling cheap for the database it shares with every
// signed-in request. A failed guess is unauthenticated traffic: an
// attacker chooses how much of it there is, and on PostgreSQL each
// throttle transaction holds one of the pool's few connections, the ones
// the session re-check needs. So, per Store (per gateway process):
//
//   - a memo of keys known to be locked (or, for a token bucket, empty)
//     until a known time refuses a flood against them from memory, without
//     a transaction; it errs only towards refusing (see thrMemo);
//   - at most ThrottleTxns throttle transactions are in flight at once,
//     and at most thrQueuePerTxn times as many attempts wait for one (a
//     few milliseconds: a burst of sign-ins is not refused); an attempt
//     beyond those is refused at once (ErrThrottleBusy), never admitted
//     uncounted;
//   - pruning a scope back under its MaxKeys, a scan of the whole scope,
//     runs in a background goroutine, never inside a request.
//
// Keys are stored as HMACs under a secret of the store (thrSecretName),
// not as plain hashes: an IPv4 address or a common e-mail address could
// be found again from its hash by trying them all.

// ErrThrottleBusy is returned by the throttle operations that admit an
// attempt (ReserveThrottle, CheckThrottle, TakeToken) when this process
// already has Options.ThrottleTxns throttle transactions in flight: the
// attempt must be refused unchecked, with a Retry-After.
// (See Options.ThrottleTxns.)
var ErrThrottleBusy = errors.New("store: too many throttle transactions in flight")

const (
	// defaultThrottleTxns bounds the throttle transactions in flight per
	// Store: PostgreSQL's pool has 10 connections by default, so
	// unauthenticated traffic can hold at most 4 of them.
	defaultThrottleTxns = 4
	// thrQueuePerTxn: attempts that may wait for a slot, per slot. Waiting
	// holds no connection, and the queue drains in a few transactions'
	// time, so a burst of legitimate attempts waits rather than fails.
	thrQueuePerTxn = 16

	// thrMemoSize bounds the keys remembered as locked (about 150 bytes
	// each). A flood from more locked keys than this costs a read-only
	// transaction per refusal beyond it, as before the memo.
	thrMemoSize = 4096

	// thrMemoLockTTL bounds how long a lock seen in the store is
	// remembered: a refund or reset on another replica may lift it
	// early, and this process must see that within a second. A flood
	// against a locked key costs one read-only transaction per key and
	// second, not one per request.
	thrMemoLockTTL = time.Second

	// thrSecretName is the store secret (GetOrCreateSecret) that keys
	// throttle records' HMACs.
	thrSecretName = "throttle-key"
)

// throttleState is the Store's per-process throttle machinery.
type throttleState struct {
	secretMu sync.Mutex
	secret   atomic.Pointer[[]byte]

	memo thrMemo
	// slots holds a token per throttle transaction in flight; queue one
	// per attempt admitted to wait for a slot (or holding one).
	slots, queue chan struct{}

	// Background pruning: pending scopes, and generations asked and
	// done so that WaitThrottlePruning can wait for what was asked.
	pruneMu     sync.Mutex
	pruneDone   *sync.Cond
	pending     map[string]pruneAsk
	asked, done uint64
	stopped     bool
	wake        chan struct{}
}

type pruneAsk struct {
	maxKeys int
	now     time.Time
	just    []byte
}

// startThrottle sets up the throttle machinery and starts the pruner.
func (s *Store) startThrottle(txns int) {
	if txns <= 0 {
		txns = defaultThrottleTxns
	}
	t := &s.thr
	t.memo.init(thrMemoSize)
	t.slots = make(chan struct{}, txns)
	t.queue = make(chan struct{}, txns*(1+thrQueuePerTxn))
	t.pruneDone = sync.NewCond(&t.pruneMu)
	t.pending = make(map[string]pruneAsk)
	t.wake = make(chan struct{}, 1)
	s.wg.Add(1)
	go s.throttlePruner()
}

// thrKey is the record key of key in scope: an HMAC under the store's
// throttle secret, so that a record names no address or account, cannot
// be matched against a list of candidates without the secret, and costs
// the same whatever the key's length.
func (s *Store) thrKey(scope, key string) ([]byte, error) {
	secret, err := s.throttleSecret()
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(scope))
	m.Write([]byte{0})
	m.Write([]byte(key))
	return append(scanPrefix(pThr, scope), hex.EncodeToString(m.Sum(nil)[:16])...), nil
}

// throttleSecret loads (or creates, the first time on this backend) the
// HMAC secret, once per process; a failure is returned and retried on the
// next call, so a throttle that cannot key its records fails closed.
func (s *Store) throttleSecret() ([]byte, error) {
	if p := s.thr.secret.Load(); p != nil {
		return *p, nil
	}
	s.thr.secretMu.Lock()
	defer s.thr.secretMu.Unlock()
	if p := s.thr.secret.Load(); p != nil {
		return *p, nil
	}
	secret, err := s.GetOrCreateSecret("throttle-key", func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: throttle key secret: %w", err)
	}
	s.thr.secret.Store(&secret)
	return secret, nil
}

// thrSlot takes one of the throttle transaction slots, waiting for it.
// With must false, the paths an unauthenticated request reaches, it
// fails at once with ErrThrottleBusy when the queue for slots is full.
// With must true it waits whatever the queue: a refund, a reset or a
// failure already checked must be written, and they follow attempts that
// were admitted, so they cannot pile up faster than those.
func (s *Store) thrSlot(must bool) (release func(), err error) {
	t := &s.thr
	if !must {
		select {
		case t.queue <- struct{}{}:
		default:
			return nil, ErrThrottleBusy
		}
	}
	select {
	case t.slots <- struct{}{}:
	case <-s.stop:
		if !must {
			<-t.queue
		}
		return nil, ErrClosed
	}
	return func() {
		<-t.slots
		if !must {
			<-t.queue
		}
	}, nil
}

// askPrune asks the background pruner to bring scope back under maxKeys.
// It returns at once.
func (s *Store) askPrune(scope string, maxKeys int, now time.Time, just []byte) {
	t := &s.thr
	t.pruneMu.Lock()
	t.pending[scope] = pruneAsk{maxKeys: maxKeys, now: now, just: just}
	t.asked++
	t.pruneMu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// WaitThrottlePruning waits until the throttle pruning asked for so far
// has run (or the store closed). For tests and diagnostics: pruning runs
// in the background, so a scope may briefly hold more than its MaxKeys.
func (s *Store) WaitThrottlePruning() {
	t := &s.thr
	t.pruneMu.Lock()
	defer t.pruneMu.Unlock()
	for want := t.asked; t.done < want && !t.stopped; {
		t.pruneDone.Wait()
	}
}

// throttlePruner runs the pruning askPrune asked for, one scope at a time,
// so that a scan of a scope never runs inside a request and at most one
// runs per process.
func (s *Store) throttlePruner() {
	defer s.wg.Done()
	t := &s.thr
	defer func() {
		t.pruneMu.Lock()
		t.stopped = true
		t.pruneDone.Broadcast()
		t.pruneMu.Unlock()
	}()
	for {
		select {
		case <-s.stop:
			return
		case <-t.wake:
		}
		t.pruneMu.Lock()
		batch, gen := t.pending, t.asked
		t.pending = make(map[string]pruneAsk)
		t.pruneMu.Unlock()
		for scope, a := range batch {
			if err := s.pruneThrottle(scope, a.maxKeys, a.now, a.just); err != nil {
				if errors.Is(err, ErrClosed) {
					return
				}
				s.log.Warn("pruning throttle records", zap.String("scope", scope), zap.Error(err))
			}
		}
		t.pruneMu.Lock()
		t.done = gen
		t.pruneDone.Broadcast()
		t.pruneMu.Unlock()
	}
}

// thrMemo remembers, per record key, until when the key is known to be
// refused: a lock this process saw in the store (and reported, so a
// refusal from the memo is never the first), or a token bucket this
// process saw empty. Refusing from it needs no transaction.
//
// It errs only towards refusing, and briefly. A lock in the store ends no
// earlier than remembered unless a refund or reset lifts it (a refund
// follows an attempt that turned out right or was not checked): those
// made by this process drop the entry, and an epoch per key group keeps a
// refusal that read the store before such a refund from remembering the
// lifted lock after it; those made by another replica are seen here
// within thrMemoLockTTL, as a lock is remembered no longer. A bucket
// refills no faster than remembered, as refusals take nothing and other
// replicas only take more, so it is remembered until its next token.
// Beyond its size the least recently used entry goes, which costs a store
// round trip, never a guess.
type thrMemo struct {
	mu  sync.Mutex
	max int
	ll  *list.List // of *memoEntry, most recently used first
	m   map[string]*list.Element
	// epochs count the forgets per group of keys (memoGroup).
	epochs [256]uint64
}

func memoGroup(k []byte) int {
	h := fnv.New32a()
	h.Write(k)
	return int(h.Sum32() % 256)
}

type memoEntry struct {
	k     string
	until int64 // remembered until (Unix nanoseconds of the caller's clock)
	ends  int64 // when the lock or emptiness ends, for Retry-After
}

func (m *thrMemo) init(size int) {
	m.max, m.ll, m.m = size, list.New(), make(map[string]*list.Element, size)
}

// refused returns how long k is still refused at now, or 0 and the
// epoch to pass to refuse after asking the store.
func (m *thrMemo) refused(k []byte, now int64) (time.Duration, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[string(k)]
	if !ok {
		return 0, m.epochs[memoGroup(k)]
	}
	ent := e.Value.(*memoEntry)
	if now >= ent.until {
		m.ll.Remove(e)
		delete(m.m, ent.k)
		return 0, m.epochs[memoGroup(k)]
	}
	m.ll.MoveToFront(e)
	return time.Duration(ent.ends - now), 0
}

// refuse remembers until then that k is refused until ends, unless a
// forget of its group came since refused returned epoch: the refusal may
// have been of a lock that was lifted since.
func (m *thrMemo) refuse(k []byte, until, ends int64, epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.epochs[memoGroup(k)] != epoch {
		return
	}
	if e, ok := m.m[string(k)]; ok {
		ent := e.Value.(*memoEntry)
		ent.until, ent.ends = max(ent.until, until), max(ent.ends, ends)
		m.ll.MoveToFront(e)
		return
	}
	if m.ll.Len() >= m.max {
		last := m.ll.Back()
		m.ll.Remove(last)
		delete(m.m, last.Value.(*memoEntry).k)
	}
	ent := &memoEntry{k: string(k), until: until, ends: ends}
	m.m[ent.k] = m.ll.PushFront(ent)
}

// forget drops k: a refund or reset in this process may have lifted its
// lock.
func (m *thrMemo) forget(k []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epochs[memoGroup(k)]++
	if e, ok := m.m[string(k)]; ok {
		m.ll.Remove(e)
		delete(m.m, string(k))
	}
}

func (m *thrMemo) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ll.Len()
}
