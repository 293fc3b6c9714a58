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
// trusted device) and locks a key with exponential back-off: after Free
// failures each further failure locks it for Base, 2·Base, 4·Base, ... up
// to Max. While a key is locked, attempts are refused without being
// checked; a success resets the key.
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
	e.failures++
	e.last = now
	over := e.failures - t.cfg.Free
	if over <= 0 {
		return 0
	}
	d := t.cfg.Max
	if over <= 40 { // beyond that the shift overflows; Max applies anyway
		if b := t.cfg.Base << (over - 1); b > 0 && b < d {
			d = b
		}
	}
	e.until = now.Add(d)
	e.reported = false
	return d
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
