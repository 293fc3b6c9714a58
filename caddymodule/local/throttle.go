package local

import (
	"net/netip"
	"slices"
	"sync"
	"time"
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
	// MaxKeys bounds the memory used (default 100,000 keys, roughly 10 MB).
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
// A Throttle lives in memory, in one process: several gateway processes
// behind a load balancer each count on their own, and a restart forgets
// everything (the gateway keeps its throttles across config reloads). It
// is safe for concurrent use.
type Throttle struct {
	cfg     ThrottleConfig
	mu      sync.Mutex
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	failures int
	last     time.Time // of the latest failure
	until    time.Time // locked before this
	reported bool      // a refusal during the current lock was reported
}

// NewThrottle returns a Throttle.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	return &Throttle{cfg: cfg.withDefaults(), entries: map[string]*throttleEntry{}}
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

// Check tells whether key is locked now.
func (t *Throttle) Check(key string) Verdict {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[key]
	if e == nil || !now.Before(e.until) {
		return Verdict{}
	}
	first := !e.reported
	e.reported = true
	return Verdict{Locked: true, RetryAfter: e.until.Sub(now), FirstRefusal: first}
}

// Fail records a failure of key and returns the lock it caused (0 if the
// key is still within its free failures).
func (t *Throttle) Fail(key string) time.Duration {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	d, _ := t.fail(key, now)
	return d
}

// fail counts a failure of key; t.mu is held. It returns the lock the
// failure started (0: none) and the lock's end before it.
func (t *Throttle) fail(key string, now time.Time) (time.Duration, time.Time) {
	e := t.entries[key]
	if e == nil {
		if len(t.entries) >= t.cfg.MaxKeys {
			t.evict(now)
		}
		e = &throttleEntry{}
		t.entries[key] = e
	} else if t.forgettable(e, now) {
		*e = throttleEntry{}
	}
	prev := e.until
	e.failures++
	e.last = now
	over := e.failures - t.cfg.Free + 1
	if over <= 0 {
		return 0, prev
	}
	d := t.cfg.Max
	if over <= 40 { // beyond that the shift overflows; Max applies anyway
		if b := t.cfg.Base << (over - 1); b > 0 && b < d {
			d = b
		}
	}
	e.until = now.Add(d)
	e.reported = false
	return d, prev
}

// Reservation is an attempt that Reserve admitted and counted as a
// failure in advance.
type Reservation struct {
	t    *Throttle
	key  string
	lock time.Duration
	// until is the lock's end this reservation set, prev the one before
	// it, so that a refund can undo the lock if nothing changed it since.
	until, prev time.Time
	refunded    bool // under t.mu
}

// Reserve admits an attempt on key unless the key is locked, and counts
// the attempt as a failure at once, with the lock that failure causes:
// the attempt's outcome is not known yet, and attempts in flight must
// count against the key. If the attempt turns out not to have failed,
// Reset the key or Refund the reservation.
func (t *Throttle) Reserve(key string) (*Reservation, Verdict) {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.entries[key]; e != nil && now.Before(e.until) {
		first := !e.reported
		e.reported = true
		return nil, Verdict{Locked: true, RetryAfter: e.until.Sub(now), FirstRefusal: first}
	}
	d, prev := t.fail(key, now)
	r := &Reservation{t: t, key: key, lock: d, prev: prev}
	if e := t.entries[key]; e != nil {
		r.until = e.until
	}
	return r, Verdict{}
}

// Lock is the lock the reserved attempt started (0: none), reported when
// the attempt fails.
func (r *Reservation) Lock() time.Duration { return r.lock }

// Refund takes the reserved failure back: the attempt was not checked
// (the hasher was busy, the request ended), or it succeeded on a key
// that a success does not reset. The lock it started is lifted unless a
// later attempt has changed it since; a later lock stays. A second
// refund does nothing.
func (r *Reservation) Refund() {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.refunded {
		return
	}
	r.refunded = true
	e := t.entries[r.key]
	if e == nil {
		return // reset or evicted since: nothing left to take back
	}
	if e.failures > 0 {
		e.failures--
	}
	if e.until.Equal(r.until) {
		e.until = r.prev
	}
}

// Reset forgets key's failures, after a success.
func (t *Throttle) Reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, key)
}

// Len is the number of keys remembered.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

func (t *Throttle) forgettable(e *throttleEntry, now time.Time) bool {
	return !now.Before(e.until) && now.Sub(e.last) >= t.cfg.Forget
}

// evict makes room: first it drops keys that would start from zero
// anyway; if that is not enough, the tenth of the keys whose last failure
// is oldest. An attacker who fills the table with fresh keys can thus
// release old locks, but only by failing MaxKeys/10 times, which the
// per-source throttle slows down.
func (t *Throttle) evict(now time.Time) {
	for k, e := range t.entries {
		if t.forgettable(e, now) {
			delete(t.entries, k)
		}
	}
	if len(t.entries) < t.cfg.MaxKeys {
		return
	}
	type aged struct {
		key  string
		last time.Time
	}
	all := make([]aged, 0, len(t.entries))
	for k, e := range t.entries {
		all = append(all, aged{k, e.last})
	}
	slices.SortFunc(all, func(a, b aged) int { return a.last.Compare(b.last) })
	for _, a := range all[:max(1, len(all)/10)] {
		delete(t.entries, a.key)
	}
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
