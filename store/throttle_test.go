package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store/pgtest"
)

// replicaPairs returns pairs of Stores on one backend, as two gateway
// processes see it. Badger allows one Store per directory, so there it is
// one Store twice; on PostgreSQL it is two Stores, each with its own
// connection pool, on one schema (skipped where no PostgreSQL can be had,
// required in CI: see pgtest).
func replicaPairs(t testing.TB) map[string][2]*Store {
	s := newTestStore(t)
	dsn, schema := pgtest.Schema(t)
	var pg [2]*Store
	for i := range pg {
		st, err := OpenBackend(openPostgresAt(t, dsn, schema), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		if st.b.Name() != "postgres" {
			t.Fatalf("backend %q", st.b.Name())
		}
		pg[i] = st
	}
	return map[string][2]*Store{"badger": {s, s}, "postgres": pg}
}

var testRule = ThrottleRule{Free: 3, Base: time.Second, Max: 10 * time.Second, Forget: time.Hour}

func TestThrottleLocksAcrossStores(t *testing.T) {
	for name, p := range replicaPairs(t) {
		t.Run(name, func(t *testing.T) {
			a, b := p[0], p[1]
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			// Free failures pass, split between the two; the third locks.
			want := []time.Duration{0, 0, time.Second, 2 * time.Second}
			for i, w := range want[:3] {
				s := p[i%2]
				tk, v, err := s.ReserveThrottle("account", "alice@example.com", testRule, now)
				if err != nil || v.Locked || tk.Lock != w {
					t.Fatalf("attempt %d: %+v %+v %v", i+1, tk, v, err)
				}
			}
			v, err := b.CheckThrottle("account", "alice@example.com", now)
			if err != nil || !v.Locked || v.RetryAfter != time.Second || !v.FirstRefusal {
				t.Fatalf("after three failures: %+v %v", v, err)
			}
			if _, v, err := a.ReserveThrottle("account", "alice@example.com", testRule, now); err != nil || !v.Locked || v.FirstRefusal {
				t.Fatalf("second refusal: %+v %v", v, err)
			}
			// Other scopes and keys are other throttles.
			if v, err := a.CheckThrottle("device", "alice@example.com", now); err != nil || v.Locked {
				t.Fatalf("other scope: %+v %v", v, err)
			}
			now = now.Add(time.Second)
			tk, v, err := a.ReserveThrottle("account", "alice@example.com", testRule, now)
			if err != nil || v.Locked || tk.Lock != want[3] {
				t.Fatalf("after the lock: %+v %+v %v", tk, v, err)
			}
			// A refund on the other store lifts the lock it started.
			if err := b.RefundThrottle(tk, now); err != nil {
				t.Fatal(err)
			}
			if v, err := a.CheckThrottle("account", "alice@example.com", now); err != nil || v.Locked {
				t.Fatalf("refund kept its lock: %+v %v", v, err)
			}
			if err := b.ResetThrottle("account", "alice@example.com"); err != nil {
				t.Fatal(err)
			}
			if tk, v, err := a.ReserveThrottle("account", "alice@example.com", testRule, now); err != nil || v.Locked || tk.Lock != 0 {
				t.Fatalf("after a reset: %+v %+v %v", tk, v, err)
			}
		})
	}
}

// TestThrottleReserveIsAtomic: of simultaneous attempts on both stores,
// exactly the free ones are admitted.
func TestThrottleReserveIsAtomic(t *testing.T) {
	for name, p := range replicaPairs(t) {
		t.Run(name, func(t *testing.T) {
			now := time.Now()
			var admitted atomic.Int32
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					_, v, err := p[i%2].ReserveThrottle("source", "192.0.2.9", testRule, now)
					if err != nil {
						t.Error(err)
					} else if !v.Locked {
						admitted.Add(1)
					}
				})
			}
			wg.Wait()
			if n := admitted.Load(); n != int32(testRule.Free) {
				t.Fatalf("%d of 20 simultaneous attempts admitted, want %d", n, testRule.Free)
			}
		})
	}
}

// TestThrottleForgetsAndExpires: a key quiet for Forget starts from
// zero, and its record leaves the store.
func TestThrottleForgetsAndExpires(t *testing.T) {
	for name, p := range replicaPairs(t) {
		t.Run(name, func(t *testing.T) { testThrottleForgetsAndExpires(t, p[0]) })
	}
}

func testThrottleForgetsAndExpires(t *testing.T, s *Store) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rule := ThrottleRule{Free: 2, Base: time.Minute, Max: time.Hour, Forget: 30 * time.Minute}
	if _, err := s.FailThrottle("account", "k", rule, now); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountThrottle("account", now); err != nil || n != 1 {
		t.Fatalf("count %d %v", n, err)
	}
	now = now.Add(31 * time.Minute)
	if n, err := s.CountThrottle("account", now); err != nil || n != 0 {
		t.Fatalf("a forgotten key is still counted: %d %v", n, err)
	}
	if d, err := s.FailThrottle("account", "k", rule, now); err != nil || d != 0 {
		t.Fatalf("first failure after a quiet half hour locked for %v (%v)", d, err)
	}
	if d, err := s.FailThrottle("account", "k", rule, now); err != nil || d != time.Minute {
		t.Fatalf("second failure: %v %v", d, err)
	}
}

// TestThrottleRecordsExpireInTheBackend: the backend itself drops a
// record once it would start from zero (its TTL), whatever the caller's
// clock says.
func TestThrottleRecordsExpireInTheBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a TTL")
	}
	for name, p := range replicaPairs(t) {
		t.Run(name, func(t *testing.T) { testThrottleRecordsExpire(t, p[0]) })
	}
}

func testThrottleRecordsExpire(t *testing.T, s *Store) {
	rule := ThrottleRule{Free: 5, Base: time.Second, Max: time.Second, Forget: time.Second}
	fixed := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) // a fake clock far in the past
	if _, err := s.FailThrottle("account", "k", rule, fixed); err != nil {
		t.Fatal(err)
	}
	k, err := s.thrKey("account", "k")
	if err != nil {
		t.Fatal(err)
	}
	present := func() bool {
		var ok bool
		must(t, s.view(func(txn Txn) error {
			var err error
			ok, err = exists(txn, k)
			return err
		}))
		return ok
	}
	if !present() {
		t.Fatal("record not written")
	}
	// Forget (1 s) plus the second of slack plus the TTL's rounding.
	deadline := time.Now().Add(10 * time.Second)
	for present() {
		if time.Now().After(deadline) {
			t.Fatal("record outlived its TTL")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestThrottleBounded: however many keys fail, a scope keeps at most
// MaxKeys records; the oldest go first, and the newest stay locked.
func TestThrottleBounded(t *testing.T) {
	for name, p := range replicaPairs(t) {
		t.Run(name, func(t *testing.T) { testThrottleBounded(t, p[0], p[1]) })
	}
}

// testThrottleBounded fails keys through a and b alternately.
func testThrottleBounded(t *testing.T, a, b *Store) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rule := ThrottleRule{Free: 1, Base: time.Minute, Max: time.Hour, Forget: time.Hour, MaxKeys: 64}
	s := a
	for i := range 400 {
		if _, err := []*Store{a, b}[i%2].FailThrottle("source", fmt.Sprint("k", i), rule, now); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Millisecond)
	}
	// Pruning runs in the background, on each process.
	a.WaitThrottlePruning()
	b.WaitThrottlePruning()
	if n, err := s.CountThrottle("source", now); err != nil || n > rule.MaxKeys {
		t.Fatalf("%d records kept, bound is %d (%v)", n, rule.MaxKeys, err)
	}
	if v, err := s.CheckThrottle("source", "k399", now); err != nil || !v.Locked {
		t.Fatalf("the newest key was evicted: %+v %v", v, err)
	}
	if v, err := s.CheckThrottle("source", "k0", now); err != nil || v.Locked {
		t.Fatalf("the oldest key was kept: %+v %v", v, err)
	}
	// Every key in the store, not only live ones, stays bounded.
	var keys int
	must(t, s.view(func(txn Txn) error {
		keys = len(keysWithPrefix(txn, scanPrefix(pThr, "source"), nil, 0))
		return nil
	}))
	if keys > rule.MaxKeys {
		t.Fatalf("%d keys under the scope", keys)
	}
}

func TestTakeToken(t *testing.T) {
	for name, p := range replicaPairs(t) {
		t.Run(name, func(t *testing.T) {
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			take := func(s *Store) (bool, time.Duration) {
				t.Helper()
				ok, retry, err := s.TakeToken("scim", "k", 2, 6*time.Second, 0, now)
				if err != nil {
					t.Fatal(err)
				}
				return ok, retry
			}
			if ok, _ := take(p[0]); !ok {
				t.Fatal("first token")
			}
			if ok, _ := take(p[1]); !ok {
				t.Fatal("second token")
			}
			if ok, retry := take(p[0]); ok || retry != 6*time.Second {
				t.Fatalf("past the burst: %v %v", ok, retry)
			}
			now = now.Add(3 * time.Second)
			if ok, retry := take(p[1]); ok || retry != 3*time.Second {
				t.Fatalf("a refused take took a token, or refill is wrong: %v %v", ok, retry)
			}
			now = now.Add(3 * time.Second)
			if ok, _ := take(p[0]); !ok {
				t.Fatal("refilled token")
			}
		})
	}
}

func TestThrottleRejectsBadRules(t *testing.T) {
	s := newTestStore(t)
	for _, r := range []ThrottleRule{{}, {Free: 1, Base: time.Second, Max: time.Millisecond, Forget: time.Hour}, {Free: 1, Base: time.Second, Max: time.Second}} {
		if _, _, err := s.ReserveThrottle("x", "k", r, time.Now()); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
	if _, _, err := s.ReserveThrottle("", "k", testRule, time.Now()); err == nil {
		t.Error("empty scope accepted")
	}
	if _, _, err := s.TakeToken("x", "k", 0, time.Second, 0, time.Now()); err == nil {
		t.Error("empty bucket accepted")
	}
}

// BenchmarkThrottle: what a password attempt's throttling costs (reserve
// on a fresh key, and refusal on a locked one), and a SCIM failure's
// token take.
func BenchmarkThrottle(b *testing.B) {
	for _, name := range []string{"badger", "postgres"} {
		b.Run(name, func(b *testing.B) { benchmarkThrottle(b, replicaPairs(b)[name][0]) })
	}
}

func benchmarkThrottle(b *testing.B, s *Store) {
	now := time.Now()
	b.Run("reserve-new-key", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, _, err := s.ReserveThrottle("account", fmt.Sprint(now.UnixNano(), "-", i, "-", &i), testRule, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("refused-locked-key", func(b *testing.B) {
		for range testRule.Free + 1 {
			_, _, _ = s.ReserveThrottle("source", "locked", testRule, now)
		}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, v, err := s.ReserveThrottle("source", "locked", testRule, now); err != nil || !v.Locked {
					b.Fatal(v, err)
				}
			}
		})
	})
	b.Run("take-token", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, _, err := s.TakeToken("scim", fmt.Sprint(i%1000, "-", &i), 10, 6*time.Second, 0, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
