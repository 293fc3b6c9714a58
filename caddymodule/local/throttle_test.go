package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// testStore is a real store in a temporary directory.
func testStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// testThrottle wraps a Throttle so that tests read as before: every store
// error fails the test.
type testThrottle struct {
	t  testing.TB
	th *Throttle
}

func newTestThrottle(t testing.TB, cfg ThrottleConfig) *testThrottle {
	return &testThrottle{t, NewThrottle(testStore(t), "test", cfg)}
}

func (x *testThrottle) Check(k string) Verdict {
	x.t.Helper()
	v, err := x.th.Check(k)
	if err != nil {
		x.t.Fatal(err)
	}
	return v
}

func (x *testThrottle) Fail(k string) time.Duration {
	x.t.Helper()
	d, err := x.th.Fail(k)
	if err != nil {
		x.t.Fatal(err)
	}
	return d
}

func (x *testThrottle) Reserve(k string) (*Reservation, Verdict) {
	x.t.Helper()
	r, v, err := x.th.Reserve(k)
	if err != nil {
		x.t.Fatal(err)
	}
	return r, v
}

func (x *testThrottle) Reset(k string) {
	x.t.Helper()
	if err := x.th.Reset(k); err != nil {
		x.t.Fatal(err)
	}
}

func (x *testThrottle) Len() int {
	x.t.Helper()
	n, err := x.th.Len()
	if err != nil {
		x.t.Fatal(err)
	}
	return n
}

func refund(t testing.TB, r *Reservation) {
	t.Helper()
	if err := r.Refund(); err != nil {
		t.Fatal(err)
	}
}

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
	th := newTestThrottle(t, ThrottleConfig{Free: 3, Base: time.Second, Max: 10 * time.Second, Forget: time.Hour, Now: c.now})
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
	th := newTestThrottle(t, ThrottleConfig{Free: 3, Base: time.Minute, Max: time.Hour, Forget: 30 * time.Minute, Now: c.now})
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
	th := newTestThrottle(t, ThrottleConfig{Free: 1, Base: time.Minute, Forget: time.Hour, MaxKeys: 100, Now: c.now})
	for i := range 1000 {
		th.Fail(fmt.Sprint("k", i))
		c.advance(time.Millisecond)
	}
	th.th.st.WaitThrottlePruning() // pruning runs in the background
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
	th := NewThrottle(testStore(t), "test", ThrottleConfig{Free: 1000000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				k := fmt.Sprint(g, "-", i%7)
				_, err1 := th.Check(k)
				_, err2 := th.Fail(k)
				var err3 error
				if i%50 == 0 {
					err3 = th.Reset(k)
				}
				if err := errors.Join(err1, err2, err3); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestThrottleBurstGetsFreeAttemptsOnly: attempts sent at the same moment
// (on one process or several: the counts are the store's) get exactly the
// free attempts between them, not one each.
func TestThrottleBurstGetsFreeAttemptsOnly(t *testing.T) {
	st := testStore(t)
	c := newClock()
	cfg := ThrottleConfig{Free: 3, Base: time.Minute, Max: time.Hour, Now: c.now}
	// Two Throttles on one store: two gateway processes on one backend.
	procs := []*Throttle{NewThrottle(st, ScopeAccount, cfg), NewThrottle(st, ScopeAccount, cfg)}
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			r, v, err := procs[i%2].Reserve("alice@example.com")
			if err != nil {
				t.Error(err)
				return
			}
			if !v.Locked && r != nil {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 3 {
		t.Fatalf("%d of 16 simultaneous attempts admitted, want the 3 free ones", n)
	}
}

// TestThrottleSharedByProcesses: what one process counted, another on the
// same backend refuses; a success on one resets it for both. Another
// scope on the same store is another throttle.
func TestThrottleSharedByProcesses(t *testing.T) {
	st := testStore(t)
	c := newClock()
	cfg := ThrottleConfig{Free: 2, Base: time.Minute, Max: time.Hour, Now: c.now}
	a, b := NewThrottle(st, ScopeAccount, cfg), NewThrottle(st, ScopeAccount, cfg)
	other := NewThrottle(st, ScopeDevice, cfg)
	for i, th := range []*Throttle{a, b} {
		if _, v, err := th.Reserve("k"); err != nil || v.Locked {
			t.Fatalf("attempt %d: %+v %v", i+1, v, err)
		}
	}
	for _, th := range []*Throttle{a, b} {
		v, err := th.Check("k")
		if err != nil || !v.Locked || v.RetryAfter != time.Minute {
			t.Fatalf("after two failures on two processes: %+v %v", v, err)
		}
	}
	if v, err := other.Check("k"); err != nil || v.Locked {
		t.Fatalf("another scope's key: %+v %v", v, err)
	}
	// The first refusal of a lock is reported once, whichever process
	// refuses first.
	c.advance(time.Second)
	_, v1, err1 := a.Reserve("k")
	_, v2, err2 := b.Reserve("k")
	if err1 != nil || err2 != nil || !v1.Locked || !v2.Locked || v1.FirstRefusal || v2.FirstRefusal {
		t.Fatalf("refusals after Check reported them: %+v %+v %v %v", v1, v2, err1, err2)
	}
	if err := b.Reset("k"); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Check("k"); err != nil || v.Locked {
		t.Fatalf("a reset on one process did not reach the other: %+v %v", v, err)
	}
}

// TestThrottleKeysHoldNoSecret: the store keeps hashes of the keys
// throttled, not the keys themselves (an address, a device token's ID).
func TestThrottleKeysHoldNoSecret(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	key := "device-" + fmt.Sprint(time.Now().UnixNano())
	if _, err := NewThrottle(st, ScopeDevice, ThrottleConfig{}).Fail(key); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(key)) {
			t.Errorf("%s holds the throttled key", f.Name())
		}
	}
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
	th := newTestThrottle(t, ThrottleConfig{Free: 3, Base: time.Second, Max: time.Hour, Now: c.now})
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
	refund(t, rs[2])
	refund(t, rs[2]) // twice counts once
	if v := th.Check("k"); v.Locked {
		t.Fatalf("refund kept its own lock: %+v", v)
	}
	r, v := th.Reserve("k") // the third failure again, not the second
	if v.Locked || r.Lock() != time.Second {
		t.Fatalf("after the refund: %+v, lock %v", v, r.Lock())
	}
	// A refund of an earlier reservation leaves a later lock alone.
	refund(t, rs[0])
	if v := th.Check("k"); !v.Locked {
		t.Fatal("an earlier refund lifted a later lock")
	}
	// A refund after a reset changes nothing.
	th.Reset("k")
	refund(t, r)
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
