package local

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/ssogate/ssogate/store"
)

// ThrottleConfig tunes a Throttle. Zero fields take the defaults noted.
type ThrottleConfig struct {
	// Free is how many failures are allowed before the first lock
	// (default 5).
	Free int
	// Base is the first lock's duration; each further failure doubles it
	// (default 1s).
	Base time.Duration
	// Max caps a lock's duration (default 15m).
	Max time.Duration
	// Forget: a key whose last failure is this old starts from zero again
	// (default 1h).
	Forget time.Duration
	// MaxKeys bounds the records kept (default 100,000 keys, a few MB);
	// beyond it the oldest are forgotten (see store.ReserveThrottle).
	MaxKeys int
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	if c.Free <= 0 {
		c.Free = 5
	}
	if c.Base <= 0 {
		c.Base = time.Second
	}
	if c.Max <= 0 {
		c.Max = 15 * time.Minute
	}
	if c.Max < c.Base {
		c.Max = c.Base
	}
	if c.Forget <= 0 {
		c.Forget = time.Hour
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 100_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Throttle counts failures per key (an account, a source address, a
// trusted device) and locks a key with exponential back-off: the Free-th
// failure locks it for Base, each further one for 2·Base, 4·Base, ... up
// to Max. While a key is locked, attempts are refused without being
// checked; a success resets the key.
//
// An attempt is counted when it is admitted (Reserve), before its
// password is hashed, not when its failure is known: otherwise every
// attempt sent at the same moment would pass the check before the first
// of them had failed, and a burst of guesses would all be checked. An
// attempt that succeeds is refunded (Reset, or Refund where a success
// must not clear the key's record).
//
// The counts are records of the store (store.ReserveThrottle and
// friends), one scope per Throttle: every gateway process on the same
// backend counts together, so N replicas give an attacker no more guesses
// than one, and neither a config reload nor a restart forgets a lock.
// What protects this process's CPU (InFlight, the hasher's queue) stays
// per process. Every method fails closed: an error from the store means
// the attempt must not be checked. It is safe for concurrent use.
type Throttle struct {
	st    *store.Store
	scope string
	cfg   ThrottleConfig
}

// NewThrottle returns a Throttle that keeps its counts in st under scope
// (ScopeAccount, ScopeSource, ScopeDevice: one scope per kind of key).
func NewThrottle(st *store.Store, scope string, cfg ThrottleConfig) *Throttle {
	return &Throttle{st: st, scope: scope, cfg: cfg.withDefaults()}
}

func (t *Throttle) rule() store.ThrottleRule {
	return store.ThrottleRule{Free: t.cfg.Free, Base: t.cfg.Base, Max: t.cfg.Max, Forget: t.cfg.Forget, MaxKeys: t.cfg.MaxKeys}
}

// Verdict is the answer of Check.
type Verdict struct {
	// Locked: refuse the attempt without checking it.
	Locked bool
	// RetryAfter is how long the lock still lasts.
	RetryAfter time.Duration
	// FirstRefusal is true for the first refusal of the current lock, so
	// that a flood of attempts against a locked key is reported once.
	FirstRefusal bool
}

func verdictOf(v store.ThrottleVerdict) Verdict {
	return Verdict{Locked: v.Locked, RetryAfter: v.RetryAfter, FirstRefusal: v.FirstRefusal}
}

// Check tells whether key is locked now.
func (t *Throttle) Check(key string) (Verdict, error) {
	v, err := t.st.CheckThrottle(t.scope, key, t.cfg.Now())
	if err != nil {
		return Verdict{}, fmt.Errorf("checking %s throttle: %w", t.scope, err)
	}
	return verdictOf(v), nil
}

// Fail records a failure of key and returns the lock it caused (0 if the
// key is still within its free failures).
func (t *Throttle) Fail(key string) (time.Duration, error) {
	d, err := t.st.FailThrottle(t.scope, key, t.rule(), t.cfg.Now())
	if err != nil {
		return 0, fmt.Errorf("counting %s failure: %w", t.scope, err)
	}
	return d, nil
}

// Reservation is an attempt that Reserve admitted and counted as a
// failure in advance.
type Reservation struct {
	t      *Throttle
	ticket *store.ThrottleTicket

	mu       sync.Mutex
	refunded bool
}

// Reserve admits an attempt on key unless the key is locked, and counts
// the attempt as a failure at once, with the lock that failure causes:
// the attempt's outcome is not known yet, and attempts in flight (on any
// process) must count against the key. If the attempt turns out not to
// have failed, Reset the key or Refund the reservation.
func (t *Throttle) Reserve(key string) (*Reservation, Verdict, error) {
	ticket, v, err := t.st.ReserveThrottle(t.scope, key, t.rule(), t.cfg.Now())
	if err != nil {
		return nil, Verdict{}, fmt.Errorf("reserving %s attempt: %w", t.scope, err)
	}
	if v.Locked {
		return nil, verdictOf(v), nil
	}
	return &Reservation{t: t, ticket: ticket}, Verdict{}, nil
}

// ThrottleKey is a key of a Throttle, for ReserveAll.
type ThrottleKey struct {
	T   *Throttle
	Key string
}

// ReserveAll is Reserve for one attempt that counts against several keys
// (of Throttles on one store), in one store transaction: if any key is
// locked, the attempt is refused with that key's verdict, locked is its
// index and nothing is counted; otherwise the attempt is counted against
// every key and rs holds their reservations in order.
func ReserveAll(keys []ThrottleKey) (rs []*Reservation, locked int, v Verdict, err error) {
	if len(keys) == 0 {
		return nil, 0, Verdict{}, fmt.Errorf("reserving an attempt: no key")
	}
	st := keys[0].T.st
	sk := make([]store.ThrottleKey, len(keys))
	for i, k := range keys {
		if k.T.st != st {
			return nil, 0, Verdict{}, fmt.Errorf("reserving an attempt: throttles on different stores")
		}
		sk[i] = store.ThrottleKey{Scope: k.T.scope, Key: k.Key, Rule: k.T.rule()}
	}
	tickets, locked, sv, err := st.ReserveThrottles(sk, keys[0].T.cfg.Now())
	if err != nil {
		return nil, 0, Verdict{}, fmt.Errorf("reserving %s attempt: %w", keys[0].T.scope, err)
	}
	if sv.Locked {
		return nil, locked, verdictOf(sv), nil
	}
	rs = make([]*Reservation, len(tickets))
	for i, tk := range tickets {
		rs[i] = &Reservation{t: keys[i].T, ticket: tk}
	}
	return rs, 0, Verdict{}, nil
}

// Lock is the lock the reserved attempt started (0: none), reported when
// the attempt fails.
func (r *Reservation) Lock() time.Duration { return r.ticket.Lock }

// Refund takes the reserved failure back: the attempt was not checked
// (the hasher was busy, the request ended), or it succeeded on a key
// that a success does not reset. The lock it started is lifted unless a
// later attempt has changed it since; a later lock stays. A second
// refund does nothing; a refund that failed leaves the failure counted.
func (r *Reservation) Refund() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refunded {
		return nil
	}
	if err := r.t.st.RefundThrottle(r.ticket, r.t.cfg.Now()); err != nil {
		return fmt.Errorf("refunding %s attempt: %w", r.t.scope, err)
	}
	r.refunded = true
	return nil
}

// Reset forgets key's failures, after a success.
func (t *Throttle) Reset(key string) error {
	if err := t.st.ResetThrottle(t.scope, key); err != nil {
		return fmt.Errorf("resetting %s throttle: %w", t.scope, err)
	}
	return nil
}

// Len is the number of keys remembered.
func (t *Throttle) Len() (int, error) {
	return t.st.CountThrottle(t.scope, t.cfg.Now())
}

// SourceKey is the key under which a client address is throttled: an IPv6
// client counts by its /64, since one host usually has a whole /64 to pick
// addresses from; anything else counts as itself. Every throttle keyed by
// source (password sign-in, SCIM authentication) uses it.
func SourceKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() || a.Is4In6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// InFlight bounds the attempts that one key (a source address) has in
// flight at once. A Throttle counts attempts but does not stop one source
// from sending many at the same moment to different accounts, each of
// which costs a password hash; beyond the bound an attempt is refused at
// once, before any hashing, and not counted as a failure. Keys leave the
// table when their last attempt ends, so its size is bounded by the
// requests in flight. It is safe for concurrent use.
//
// Unlike a Throttle, it is per process on purpose: what it protects is
// this process's CPU (each attempt in flight is a password hash here), and
// a count shared with other replicas would refuse a source for hashes
// other machines are doing.
type InFlight struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// NewInFlight allows max attempts in flight per key (<= 0: 2).
func NewInFlight(max int) *InFlight {
	if max <= 0 {
		max = 2
	}
	return &InFlight{max: max, n: map[string]int{}}
}

// Acquire admits an attempt for key, returning the function that ends
// it, or false if key already has the maximum in flight.
func (f *InFlight) Acquire(key string) (release func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[key] >= f.max {
		return nil, false
	}
	f.n[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.n[key]--; f.n[key] <= 0 {
				delete(f.n, key)
			}
		})
	}, true
}
