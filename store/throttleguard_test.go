package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store/pgtest"
)

// writeCounter counts a Store's write transactions by operation
// (Options.ObserveWrite), leaving out the audit trail's background
// flushes, which no throttle causes.
type writeCounter struct {
	mu  sync.Mutex
	ops map[string]int
}

func (c *writeCounter) observe(op string, _ time.Duration) {
	if strings.Contains(op, "audit") {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops == nil {
		c.ops = map[string]int{}
	}
	c.ops[op]++
}

// take returns the writes counted since the last take.
func (c *writeCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	ops := c.ops
	c.ops = nil
	return ops
}

// guardStores opens a Store on each backend with opts, each with its own
// write counter.
func guardStores(t *testing.T, opts Options) map[string]*Store {
	t.Helper()
	dsn, schema := pgtest.Schema(t)
	open := func(name string, b func(Options) (*Store, error)) *Store {
		s, err := b(opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	return map[string]*Store{
		"badger": open("badger", func(o Options) (*Store, error) { o.GCInterval = -1; return Open(t.TempDir(), o) }),
		"postgres": open("postgres", func(o Options) (*Store, error) {
			return OpenBackend(openPostgresAt(t, dsn, schema), o)
		}),
	}
}

func countedStores(t *testing.T, opts Options) map[string]struct {
	s *Store
	w *writeCounter
} {
	out := map[string]struct {
		s *Store
		w *writeCounter
	}{}
	for _, name := range []string{"badger", "postgres"} {
		w := &writeCounter{}
		o := opts
		o.ObserveWrite = w.observe
		out[name] = struct {
			s *Store
			w *writeCounter
		}{guardStores(t, o)[name], w}
	}
	return out
}

// TestThrottleFloodOnLockedKeyWritesNothing: once this process saw a key
// locked (or a bucket empty), a flood against it is refused from memory:
// not one store transaction, until the lock ends.
func TestThrottleFloodOnLockedKeyWritesNothing(t *testing.T) {
	for name, x := range countedStores(t, Options{}) {
		t.Run(name, func(t *testing.T) {
			s, w := x.s, x.w
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			for range testRule.Free {
				if _, v, err := s.ReserveThrottle("source", "192.0.2.9", testRule, now); err != nil || v.Locked {
					t.Fatalf("free attempt: %+v %v", v, err)
				}
			}
			if _, v, err := s.ReserveThrottle("source", "192.0.2.9", testRule, now); err != nil || !v.Locked || !v.FirstRefusal {
				t.Fatalf("first refusal: %+v %v", v, err)
			}
			w.take()
			later := now.Add(400 * time.Millisecond)
			for i := range 200 {
				var v ThrottleVerdict
				var err error
				if i%2 == 0 {
					_, v, err = s.ReserveThrottle("source", "192.0.2.9", testRule, later)
				} else {
					v, err = s.CheckThrottle("source", "192.0.2.9", later)
				}
				if err != nil || !v.Locked || v.FirstRefusal || v.RetryAfter != 600*time.Millisecond {
					t.Fatalf("refusal %d: %+v %v", i, v, err)
				}
			}
			if ops := w.take(); len(ops) != 0 {
				t.Fatalf("a flood against a locked key wrote %v", ops)
			}
			// When the lock ends the store decides again (and counts).
			tk, v, err := s.ReserveThrottle("source", "192.0.2.9", testRule, now.Add(time.Second))
			if err != nil || v.Locked || tk.Lock != 2*time.Second {
				t.Fatalf("after the lock: %+v %+v %v", tk, v, err)
			}
			if ops := w.take(); ops["reserve throttle"] != 1 {
				t.Fatalf("the attempt after the lock wrote %v", ops)
			}

			// An empty bucket: refused from memory until its next token.
			for range 2 {
				if ok, _, err := s.TakeToken("scim", "k", 2, time.Minute, 0, now); err != nil || !ok {
					t.Fatalf("token: %v %v", ok, err)
				}
			}
			w.take()
			for range 100 {
				if ok, retry, err := s.TakeToken("scim", "k", 2, time.Minute, 0, now.Add(15*time.Second)); err != nil || ok || retry != 45*time.Second {
					t.Fatalf("empty bucket: %v %v %v", ok, retry, err)
				}
			}
			if ops := w.take(); len(ops) != 0 {
				t.Fatalf("a flood against an empty bucket wrote %v", ops)
			}
			if ok, _, err := s.TakeToken("scim", "k", 2, time.Minute, 0, now.Add(time.Minute)); err != nil || !ok {
				t.Fatalf("refilled token: %v %v", ok, err)
			}
		})
	}
}

// TestThrottleRefundForgetsRemembered: a refund or reset in this process
// lifts a lock it remembered at once.
func TestThrottleRefundForgetsRemembered(t *testing.T) {
	s := newTestStore(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var last *ThrottleTicket
	for range testRule.Free {
		tk, v, err := s.ReserveThrottle("account", "a@example.com", testRule, now)
		if err != nil || v.Locked {
			t.Fatalf("%+v %v", v, err)
		}
		last = tk
	}
	if _, v, err := s.ReserveThrottle("account", "a@example.com", testRule, now); err != nil || !v.Locked {
		t.Fatalf("not locked: %+v %v", v, err)
	}
	must(t, s.RefundThrottle(last, now))
	if _, v, err := s.ReserveThrottle("account", "a@example.com", testRule, now); err != nil || v.Locked {
		t.Fatalf("a refund in this process left a remembered lock: %+v %v", v, err)
	}
	if _, v, err := s.ReserveThrottle("account", "a@example.com", testRule, now); err != nil || !v.Locked {
		t.Fatalf("not locked again: %+v %v", v, err)
	}
	must(t, s.ResetThrottle("account", "a@example.com"))
	if v, err := s.CheckThrottle("account", "a@example.com", now); err != nil || v.Locked {
		t.Fatalf("a reset in this process left a remembered lock: %+v %v", v, err)
	}
}

func TestThrottleMemoIsBounded(t *testing.T) {
	var m thrMemo
	m.init(3)
	refused := func(k string, now int64) time.Duration {
		d, _ := m.refused([]byte(k), now)
		return d
	}
	for i := range 4 {
		k := []byte(fmt.Sprint("k", i))
		_, epoch := m.refused(k, 0)
		m.refuse(k, 100, 100, epoch)
		if i == 1 {
			refused("k0", 0) // used: k1 is now the oldest
		}
	}
	if n := m.len(); n != 3 {
		t.Fatalf("%d entries, bound 3", n)
	}
	if refused("k1", 0) != 0 || refused("k0", 0) != 100 || refused("k3", 0) != 100 {
		t.Fatal("the least recently used entry was not the one evicted")
	}
	if refused("k0", 100) != 0 || m.len() != 2 {
		t.Fatal("an ended entry was kept")
	}
}

// TestThrottleMemoSkipsRefusalsOlderThanAForget: a refusal that read the
// store before a refund or reset of its key does not remember the lock
// that refund lifted.
func TestThrottleMemoSkipsRefusalsOlderThanAForget(t *testing.T) {
	var m thrMemo
	m.init(10)
	_, epoch := m.refused([]byte("k"), 0)  // the refusal asks the store...
	m.forget([]byte("k"))                  // ...a refund lifts the lock...
	m.refuse([]byte("k"), 100, 100, epoch) // ...and the refusal returns.
	if d, _ := m.refused([]byte("k"), 0); d != 0 {
		t.Fatalf("a lock lifted meanwhile is remembered for %v", d)
	}
	_, epoch = m.refused([]byte("k"), 0)
	m.refuse([]byte("k"), 100, 100, epoch)
	if d, _ := m.refused([]byte("k"), 0); d != 100 {
		t.Fatalf("a refusal with no forget since is not remembered: %v", d)
	}
}

// TestThrottleRememberedLockSeesOtherReplicaWithinASecond: a lock that
// another process lifts (a refund of the attempt that started it) is
// refused from this process's memory for at most thrMemoLockTTL more.
func TestThrottleRememberedLockSeesOtherReplicaWithinASecond(t *testing.T) {
	p := replicaPairs(t)["postgres"]
	a, b := p[0], p[1]
	rule := ThrottleRule{Free: 2, Base: time.Hour, Max: time.Hour, Forget: time.Hour}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var last *ThrottleTicket
	for range rule.Free {
		tk, _, err := b.ReserveThrottle("source", "192.0.2.5", rule, now)
		must(t, err)
		last = tk
	}
	if _, v, err := a.ReserveThrottle("source", "192.0.2.5", rule, now); err != nil || !v.Locked {
		t.Fatalf("not locked: %+v %v", v, err)
	}
	must(t, b.RefundThrottle(last, now))
	if _, v, err := a.ReserveThrottle("source", "192.0.2.5", rule, now.Add(999*time.Millisecond)); err != nil || !v.Locked || v.RetryAfter != time.Hour-999*time.Millisecond {
		t.Fatalf("the remembered lock: %+v %v", v, err)
	}
	if _, v, err := a.ReserveThrottle("source", "192.0.2.5", rule, now.Add(time.Second)); err != nil || v.Locked {
		t.Fatalf("a lock lifted on another replica is still refused here after a second: %+v %v", v, err)
	}
}

// TestThrottleBusyRefusesBeyondCap: with ThrottleTxns transactions in
// flight and the queue for them full, an attempt is refused at once with
// ErrThrottleBusy and nothing is written; a refund still waits its turn
// and is written; once the transactions end, attempts are served again.
func TestThrottleBusyRefusesBeyondCap(t *testing.T) {
	for name, x := range countedStores(t, Options{ThrottleTxns: 1}) {
		t.Run(name, func(t *testing.T) {
			s, w := x.s, x.w
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			tk, _, err := s.ReserveThrottle("account", "a@example.com", testRule, now)
			must(t, err)
			// Hold the one slot, as a transaction in flight would.
			s.thr.slots <- struct{}{}
			w.take()
			// Attempts queue for it, up to the queue's size...
			queued := cap(s.thr.queue)
			var wg sync.WaitGroup
			errs := make(chan error, queued+1)
			for i := range queued {
				wg.Go(func() {
					_, _, err := s.ReserveThrottle("source", fmt.Sprint("198.51.100.", i), testRule, now)
					errs <- err
				})
			}
			for len(s.thr.queue) < queued {
				time.Sleep(time.Millisecond)
			}
			// ...and beyond it are refused at once, whatever the call.
			if _, _, err := s.ReserveThrottle("source", "192.0.2.1", testRule, now); !errors.Is(err, ErrThrottleBusy) {
				t.Fatalf("reserve beyond the cap: %v", err)
			}
			if _, err := s.CheckThrottle("source", "192.0.2.1", now); !errors.Is(err, ErrThrottleBusy) {
				t.Fatalf("check beyond the cap: %v", err)
			}
			if _, _, err := s.TakeToken("scim", "192.0.2.1", 2, time.Minute, 0, now); !errors.Is(err, ErrThrottleBusy) {
				t.Fatalf("take beyond the cap: %v", err)
			}
			// A refund is not refused: it waits for the slot.
			wg.Go(func() { errs <- s.RefundThrottle(tk, now) })
			if ops := w.take(); len(ops) != 0 {
				t.Fatalf("wrote %v while every slot was taken", ops)
			}
			<-s.thr.slots
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			ops := w.take()
			if ops["reserve throttle"] != queued || ops["refund throttle"] != 1 {
				t.Fatalf("the queued attempts wrote %v, want %d reservations and a refund", ops, queued)
			}
			if len(s.thr.queue) != 0 || len(s.thr.slots) != 0 {
				t.Fatalf("slots leaked: queue %d, slots %d", len(s.thr.queue), len(s.thr.slots))
			}
			if n, err := s.CountThrottle("source", now); err != nil || n != queued {
				t.Fatalf("%d records after %d queued attempts (%v); the refused one must not count", n, queued, err)
			}
		})
	}
}

// TestThrottleKeysAreHMACs: a throttle record's key is an HMAC of the
// throttled key under the store's secret, not a plain hash that a list of
// all IPv4 addresses would reverse; another deployment (another secret)
// keys the same address differently.
func TestThrottleKeysAreHMACs(t *testing.T) {
	keys := map[string]string{}
	stores := guardStores(t, Options{})
	stores["badger-2"] = newTestStore(t)
	for name, s := range stores {
		t.Run(name, func(t *testing.T) {
			if _, err := s.FailThrottle("source", "192.0.2.7", testRule, time.Now()); err != nil {
				t.Fatal(err)
			}
			secret, err := s.GetOrCreateSecret(thrSecretName, func() ([]byte, error) { return nil, errors.New("no secret was created") })
			if err != nil {
				t.Fatal(err)
			}
			if len(secret) < 32 {
				t.Fatalf("secret of %d bytes", len(secret))
			}
			m := hmac.New(sha256.New, secret)
			m.Write([]byte("source\x00192.0.2.7"))
			want := string(scanPrefix(pThr, "source")) + hex.EncodeToString(m.Sum(nil)[:16])
			plain := sha256.Sum256([]byte("192.0.2.7"))
			var got []string
			must(t, s.view(func(txn Txn) error {
				for _, k := range keysWithPrefix(txn, scanPrefix(pThr, "source"), nil, 0) {
					got = append(got, string(k))
				}
				return nil
			}))
			if len(got) != 1 || got[0] != want {
				t.Fatalf("keys %q, want [%q]", got, want)
			}
			if strings.Contains(got[0], hex.EncodeToString(plain[:16])) || strings.Contains(got[0], "192.0.2.7") {
				t.Fatalf("key %q is the address's plain hash or the address", got[0])
			}
			keys[name] = got[0]
		})
	}
	if keys["badger"] == keys["badger-2"] {
		t.Error("two deployments key an address alike: the secret is not used")
	}
}

// TestReserveThrottlesIsAllOrNothing: an attempt against several keys is
// counted against all of them in one transaction, or, when one is
// locked, against none.
func TestReserveThrottlesIsAllOrNothing(t *testing.T) {
	for name, x := range countedStores(t, Options{}) {
		t.Run(name, func(t *testing.T) {
			s, w := x.s, x.w
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			account := ThrottleRule{Free: 2, Base: time.Minute, Max: time.Hour, Forget: time.Hour}
			source := ThrottleRule{Free: 20, Base: time.Minute, Max: time.Hour, Forget: time.Hour}
			keys := []ThrottleKey{{Scope: "source", Key: "192.0.2.8", Rule: source}, {Scope: "account", Key: "a@example.com", Rule: account}}
			for i := range 2 {
				tks, _, v, err := s.ReserveThrottles(keys, now)
				if err != nil || v.Locked || len(tks) != 2 || tks[0].Scope != "source" || tks[1].Scope != "account" {
					t.Fatalf("attempt %d: %+v %+v %v", i+1, tks, v, err)
				}
			}
			if ops := w.take(); ops["reserve throttle"] != 2 {
				t.Fatalf("two attempts on two keys wrote %v, want 2 transactions", ops)
			}
			// The account is locked now: refused, and the source not counted.
			for range 30 {
				_, locked, v, err := s.ReserveThrottles(keys, now)
				if err != nil || !v.Locked || locked != 1 {
					t.Fatalf("locked account: %d %+v %v", locked, v, err)
				}
			}
			if v, err := s.CheckThrottle("source", "192.0.2.8", now); err != nil || v.Locked {
				t.Fatalf("refused attempts were counted against the source: %+v %v", v, err)
			}
			_, _, v, err := s.ReserveThrottles([]ThrottleKey{keys[0], keys[0]}, now)
			if !errors.Is(err, ErrInvalid) || v.Locked {
				t.Fatalf("a key given twice: %+v %v", v, err)
			}
		})
	}
}
