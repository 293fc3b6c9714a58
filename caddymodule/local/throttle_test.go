package local

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a settable time for throttle tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestThrottleBacksOffExponentiallyAndLifts(t *testing.T) {
	c := newClock()
	th := NewThrottle(ThrottleConfig{Free: 3, Base: time.Second, Max: 10 * time.Second, Forget: time.Hour, Now: c.now})
	// Free failures pass; the Free-th starts the first lock.
	for i := range 2 {
		if v := th.Check("k"); v.Locked {
			t.Fatalf("locked after %d failures", i)
		}
		if d := th.Fail("k"); d != 0 {
			t.Fatalf("failure %d locked for %v", i+1, d)
		}
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if d := th.Fail("k"); d != w {
			t.Fatalf("failure %d: lock %v, want %v", i+3, d, w)
		}
		v := th.Check("k")
		if !v.Locked || v.RetryAfter != w || !v.FirstRefusal {
			t.Fatalf("after failure %d: %+v", i+3, v)
		}
		if v := th.Check("k"); !v.Locked || v.FirstRefusal {
			t.Fatalf("second refusal reported as first: %+v", v)
		}
		c.advance(w - time.Millisecond)
		if v := th.Check("k"); !v.Locked || v.RetryAfter != time.Millisecond {
			t.Fatalf("lock lifted early: %+v", v)
		}
		c.advance(time.Millisecond)
		if v := th.Check("k"); v.Locked {
			t.Fatalf("lock did not lift: %+v", v)
		}
	}
	// Other keys are unaffected; a reset starts over.
	if v := th.Check("other"); v.Locked {
		t.Error("unrelated key locked")
	}
	th.Reset("k")
	if d := th.Fail("k"); d != 0 {
		t.Errorf("after reset, first failure locked for %v", d)
	}
}

func TestThrottleForgetsOldFailures(t *testing.T) {
	c := newClock()
	th := NewThrottle(ThrottleConfig{Free: 3, Base: time.Minute, Max: time.Hour, Forget: 30 * time.Minute, Now: c.now})
	th.Fail("k")
	th.Fail("k")
	c.advance(29 * time.Minute)
	if d := th.Fail("k"); d != time.Minute {
		t.Fatalf("third failure within the window: lock %v", d)
	}
	c.advance(31 * time.Minute)
	if d := th.Fail("k"); d != 0 {
		t.Errorf("failure after a quiet half hour locked for %v", d)
	}
}

func TestThrottleIsBounded(t *testing.T) {
	c := newClock()
	th := NewThrottle(ThrottleConfig{Free: 1, Base: time.Minute, Forget: time.Hour, MaxKeys: 100, Now: c.now})
	for i := range 1000 {
		th.Fail(fmt.Sprint("k", i))
		c.advance(time.Millisecond)
	}
	if n := th.Len(); n > 100 {
		t.Fatalf("%d keys remembered, bound is 100", n)
	}
	// The newest keys are kept.
	th.Fail("k999")
	if v := th.Check("k999"); !v.Locked {
		t.Error("newest key was evicted")
	}
	// Keys that would start from zero anyway go first.
	c.advance(2 * time.Hour)
	th.Fail("fresh")
	if n := th.Len(); n != 1 {
		t.Errorf("stale keys kept: %d", n)
	}
}

func TestThrottleConcurrentUse(t *testing.T) {
	th := NewThrottle(ThrottleConfig{Free: 1000000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := fmt.Sprint(g, "-", i%7)
				th.Check(k)
				th.Fail(k)
				if i%50 == 0 {
					th.Reset(k)
				}
			}
		}()
	}
	wg.Wait()
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"::ffff:192.0.2.7":     "::ffff:192.0.2.7",
		"not an address":       "not an address",
		"fe80::1%eth0":         "fe80::/64",
	} {
		if got := SourceKey(in); got != want {
			t.Errorf("SourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestThrottleReserveCountsAttemptsInFlight: a reservation counts as a
// failure at once, with its lock; a refund takes it back, lifting the
// lock it started unless a later one replaced it.
func TestThrottleReserveCountsAttemptsInFlight(t *testing.T) {
	c := newClock()
	th := NewThrottle(ThrottleConfig{Free: 3, Base: time.Second, Max: time.Hour, Now: c.now})
	var rs []*Reservation
	for i := range 3 {
		r, v := th.Reserve("k")
		if v.Locked {
			t.Fatalf("reservation %d refused", i+1)
		}
		rs = append(rs, r)
	}
	if rs[0].Lock() != 0 || rs[1].Lock() != 0 || rs[2].Lock() != time.Second {
		t.Fatalf("locks %v %v %v", rs[0].Lock(), rs[1].Lock(), rs[2].Lock())
	}
	if _, v := th.Reserve("k"); !v.Locked || !v.FirstRefusal {
		t.Fatalf("fourth attempt while three are in flight: %+v", v)
	}
	// The third succeeded on a key a success does not reset: its lock goes.
	rs[2].Refund()
	rs[2].Refund() // twice counts once
	if v := th.Check("k"); v.Locked {
		t.Fatalf("refund kept its own lock: %+v", v)
	}
	r, v := th.Reserve("k") // the third failure again, not the second
	if v.Locked || r.Lock() != time.Second {
		t.Fatalf("after the refund: %+v, lock %v", v, r.Lock())
	}
	// A refund of an earlier reservation leaves a later lock alone.
	rs[0].Refund()
	if v := th.Check("k"); !v.Locked {
		t.Fatal("an earlier refund lifted a later lock")
	}
	// A refund after a reset changes nothing.
	th.Reset("k")
	r.Refund()
	if th.Len() != 0 {
		t.Error("refund after reset created an entry")
	}
}

func TestInFlightBound(t *testing.T) {
	f := NewInFlight(2)
	r1, ok1 := f.Acquire("a")
	_, ok2 := f.Acquire("a")
	if _, ok := f.Acquire("a"); !ok1 || !ok2 || ok {
		t.Fatalf("third acquire of a admitted, or first two refused: %v %v %v", ok1, ok2, ok)
	}
	if _, ok := f.Acquire("b"); !ok {
		t.Fatal("another key refused")
	}
	r1()
	r1() // a second release is harmless
	if _, ok := f.Acquire("a"); !ok {
		t.Fatal("released slot not reusable")
	}
	if _, ok := f.Acquire("a"); ok {
		t.Fatal("double release freed two slots")
	}
}
