package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"
)

// Throttle counters: how often a key (an account, a source address, a
// trusted device, a SCIM source and organization) failed lately. They are
// records of the store rather than maps in memory so that every gateway
// process on one backend counts together: N replicas behind a load
// balancer must not give an attacker N times the guesses, and a restart
// must not forget a lock.
//
// Each check-and-count is one transaction, so attempts racing on several
// processes are serialized by the backend (the loser of a conflict runs
// again and sees the winner's count). Counts are written on the no-sync
// path (Backend.UpdateNoSync: on PostgreSQL the commit does not wait for
// the WAL flush, so only a crash of the database server can lose the last
// fraction of a second of commits; Badger syncs anyway). Losing them is
// acceptable: it hands an attacker back a handful of guesses at most,
// which the next failures count again, and the locks they cause are
// seconds to minutes long; syncing every failed guess would instead let a
// flood of guesses cost a disk flush each.
//
// Keys are stored as HMACs under a secret of the store (see thrKey): a
// record names no address, account or device token part, cannot be
// matched against a list of candidate addresses without the secret, and a
// key of any length costs the same. (Records written under the former
// plain SHA-256 form are no longer found and expire on their TTL: an
// upgrade starts every count from zero.) Records expire (backend TTL)
// once they would start from zero anyway, and each scope holds at most
// about its MaxKeys records (see pruneThrottle), so an attacker with many
// sources cannot grow the store without limit.
//
// What bounds the database work throttling costs per process (a memo of
// locked keys, a cap on transactions in flight, pruning in the
// background) is in throttleguard.go.

const (
	pThr  = "thr"  // thr/<scope>/<hex hmac(key)>   throttleRecord, TTL = when it would start from zero
	pThrN = "thrn" // thrn/<scope>/<stripe>         records created in the scope (approximate)

	// thrStripes spreads a scope's record count over several keys, so
	// that failures on new keys from many sources do not all conflict on
	// one counter.
	thrStripes = 16

	defaultThrottleMaxKeys = 100_000
)

// ThrottleRule is how a scope's failures turn into locks: the Free-th
// failure within Forget locks the key for Base, each further one for
// twice as long, up to Max.
type ThrottleRule struct {
	Free   int
	Base   time.Duration
	Max    time.Duration
	Forget time.Duration
	// MaxKeys bounds the records of the scope (default 100,000).
	MaxKeys int
}

func (r ThrottleRule) check(op string) error {
	if r.Free <= 0 || r.Base <= 0 || r.Max < r.Base || r.Forget <= 0 || r.MaxKeys < 0 {
		return invalid(op, "throttle rule %+v", r)
	}
	return nil
}

func (r ThrottleRule) maxKeys() int {
	if r.MaxKeys <= 0 {
		return defaultThrottleMaxKeys
	}
	return r.MaxKeys
}

// ThrottleVerdict says whether a key is locked.
type ThrottleVerdict struct {
	Locked bool
	// RetryAfter is how long the lock still lasts.
	RetryAfter time.Duration
	// FirstRefusal is true for the first refusal of the current lock
	// across every process, so that a flood against a locked key is
	// reported once.
	FirstRefusal bool
}

// ThrottleTicket is an attempt that ReserveThrottle counted as a failure
// in advance; RefundThrottle takes it back.
type ThrottleTicket struct {
	Scope, Key string
	Rule       ThrottleRule
	// Lock is the lock the reserved failure started (0: none).
	Lock time.Duration
	// until is the lock's end this reservation set, prev the one before
	// it, so that a refund lifts the lock only if nothing changed it since.
	until, prev int64
	k           []byte // the record's key
}

// throttleRecord is one key's state. Times are Unix nanoseconds of the
// caller's clock (tests run on a fixed one).
type throttleRecord struct {
	Failures int   `json:"f,omitempty"`
	Last     int64 `json:"l"`           // latest failure (token taken, for buckets)
	Until    int64 `json:"u,omitempty"` // locked before this
	Reported bool  `json:"r,omitempty"` // a refusal during the current lock was reported
	// Tokens is a bucket's content at Last (TakeToken).
	Tokens float64 `json:"t,omitempty"`
	// Expires is when the record would start from zero anyway.
	Expires int64 `json:"x"`
}

// thrStripe is the count stripe of record key k (thrKey's result), so
// that a prune can tell each record's stripe from its key.
func thrStripe(k []byte) int {
	h := fnv.New32a()
	h.Write(k[bytes.LastIndexByte(k, '/')+1:])
	return int(h.Sum32() % thrStripes)
}

func thrCountKey(scope string, stripe int) []byte {
	return key(pThrN, scope, fmt.Sprint(stripe))
}

// thrTTL converts a record's expiry on the caller's clock into the
// backend's TTL on the wall clock, a second late so that the backend
// never drops a record before the store's own check would.
func thrTTL(expires int64, now time.Time) uint64 {
	return ttlSeconds(time.Now().Add(time.Duration(expires-now.UnixNano()) + time.Second))
}

// loadThrottle reads key's record; found is false for an absent one and
// for one that would start from zero at now.
func loadThrottle(txn Txn, k []byte, now int64) (rec throttleRecord, found, live bool, err error) {
	switch err := getJSON(txn, k, &rec); {
	case errors.Is(err, ErrNotFound):
		return throttleRecord{}, false, false, nil
	case err != nil:
		return throttleRecord{}, false, false, err
	}
	if now >= rec.Expires {
		return throttleRecord{}, true, false, nil
	}
	return rec, true, true, nil
}

// saveThrottle writes rec; a record that did not exist is counted in its
// scope, and the count returned says whether the scope needs pruning.
func saveThrottle(txn Txn, scope string, k []byte, rec *throttleRecord, existed bool, now time.Time) (int, error) {
	if _, err := setJSON(txn, k, rec, thrTTL(rec.Expires, now)); err != nil {
		return 0, err
	}
	if existed {
		return 0, nil
	}
	ck := thrCountKey(scope, thrStripe(k))
	n, err := counter(txn, ck)
	if err != nil {
		return 0, err
	}
	n++
	_, err = setJSON(txn, ck, n, 0)
	return n, err
}

// fail counts a failure on rec at now and returns the lock it started
// (0: none).
func (r ThrottleRule) fail(rec *throttleRecord, now int64) time.Duration {
	rec.Failures++
	rec.Last = now
	rec.Expires = max(rec.Until, now+int64(r.Forget))
	over := rec.Failures - r.Free + 1
	if over <= 0 {
		return 0
	}
	d := r.Max
	if over <= 40 { // beyond that the shift overflows; Max applies anyway
		if b := r.Base << (over - 1); b > 0 && b < d {
			d = b
		}
	}
	rec.Until = now + int64(d)
	rec.Reported = false
	rec.Expires = max(rec.Until, rec.Expires)
	return d
}

// thrOpen checks scope and returns key's record key. It runs before
// enter: the first call reads the HMAC secret through GetOrCreateSecret,
// which enters the store itself.
func (s *Store) thrOpen(op, scope, key string) ([]byte, error) {
	if err := need(op, "scope", scope); err != nil {
		return nil, err
	}
	k, err := s.thrKey(scope, key)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return k, nil
}

// thrBusy wraps a slot failure for op.
func thrBusy(op string, err error) error {
	return fmt.Errorf("store: %s: %w", op, err)
}

// ReserveThrottle admits an attempt on key in scope unless the key is
// locked at now, and counts the attempt as a failure at once, with the
// lock that failure causes: its outcome is not known yet, and attempts in
// flight on any process must count against the key. If the attempt turns
// out not to have failed, ResetThrottle the key or RefundThrottle the
// ticket. Check and count are one transaction.
//
// A key this process saw locked within the last second is refused from
// memory, without a transaction; with too many throttle transactions in
// flight the attempt is refused with ErrThrottleBusy (see
// throttleguard.go).
func (s *Store) ReserveThrottle(scope, key string, rule ThrottleRule, now time.Time) (*ThrottleTicket, ThrottleVerdict, error) {
	tickets, _, v, err := s.ReserveThrottles([]ThrottleKey{{Scope: scope, Key: key, Rule: rule}}, now)
	if err != nil || v.Locked {
		return nil, v, err
	}
	return tickets[0], v, nil
}

// ThrottleKey names one key of ReserveThrottles.
type ThrottleKey struct {
	Scope, Key string
	Rule       ThrottleRule
}

// ReserveThrottles is ReserveThrottle for an attempt that counts against
// several keys (a source and an account), in one transaction: if any key
// is locked, nothing is counted and the verdict of the first locked key
// (locked is its index) is returned; otherwise the attempt is counted
// against every key, and tickets holds their tickets in order. One
// transaction instead of one per key halves what an attempt costs the
// database, and a refused attempt needs no refund.
func (s *Store) ReserveThrottles(keys []ThrottleKey, now time.Time) (tickets []*ThrottleTicket, locked int, verdict ThrottleVerdict, err error) {
	const op = "reserve throttle"
	if len(keys) == 0 {
		return nil, 0, ThrottleVerdict{}, invalid(op, "no key")
	}
	ks := make([][]byte, len(keys))
	for i, tk := range keys {
		if err := tk.Rule.check(op); err != nil {
			return nil, 0, ThrottleVerdict{}, err
		}
		if ks[i], err = s.thrOpen(op, tk.Scope, tk.Key); err != nil {
			return nil, 0, ThrottleVerdict{}, err
		}
		for _, k := range ks[:i] {
			if bytes.Equal(k, ks[i]) {
				return nil, 0, ThrottleVerdict{}, invalid(op, "key %d given twice", i)
			}
		}
	}
	if err := s.enter(); err != nil {
		return nil, 0, ThrottleVerdict{}, err
	}
	defer s.leave()
	t := now.UnixNano()
	epochs := make([]uint64, len(keys))
	for i, k := range ks {
		d, epoch := s.thr.memo.refused(k, t)
		if d > 0 {
			return nil, i, ThrottleVerdict{Locked: true, RetryAfter: d}, nil
		}
		epochs[i] = epoch
	}
	release, err := s.thrSlot(false)
	if err != nil {
		return nil, 0, ThrottleVerdict{}, thrBusy(op, err)
	}
	defer release()
	counts := make([]int, len(keys))
	err = s.updateThrottle(op, func(txn Txn) error {
		tickets, locked, verdict = nil, 0, ThrottleVerdict{}
		clear(counts)
		recs := make([]throttleRecord, len(keys))
		found := make([]bool, len(keys))
		for i, k := range ks {
			rec, f, _, err := loadThrottle(txn, k, t)
			if err != nil {
				return err
			}
			if t < rec.Until {
				locked = i
				verdict = ThrottleVerdict{Locked: true, RetryAfter: time.Duration(rec.Until - t), FirstRefusal: !rec.Reported}
				if rec.Reported {
					return nil // nothing to write: a flood against a lock costs reads only
				}
				rec.Reported = true
				_, err := setJSON(txn, k, &rec, thrTTL(rec.Expires, now))
				return err
			}
			recs[i], found[i] = rec, f
		}
		for i, k := range ks {
			rec := &recs[i]
			prev := rec.Until
			lock := keys[i].Rule.fail(rec, t)
			tickets = append(tickets, &ThrottleTicket{Scope: keys[i].Scope, Key: keys[i].Key, Rule: keys[i].Rule, Lock: lock, until: rec.Until, prev: prev, k: k})
			var err error
			if counts[i], err = saveThrottle(txn, keys[i].Scope, k, rec, found[i], now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, ThrottleVerdict{}, err
	}
	if verdict.Locked {
		// Reported now, so a refusal from the memo is never the first.
		s.thr.memo.refuse(ks[locked], t+int64(min(verdict.RetryAfter, thrMemoLockTTL)), t+int64(verdict.RetryAfter), epochs[locked])
		return nil, locked, verdict, nil
	}
	for i, k := range ks {
		s.maybePruneThrottle(keys[i].Scope, keys[i].Rule.maxKeys(), counts[i], now, k)
	}
	return tickets, 0, verdict, nil
}

// FailThrottle counts a failure of key that was not reserved, and returns
// the lock it started (0: none). The failure happened, so it waits for a
// throttle transaction slot rather than go uncounted.
func (s *Store) FailThrottle(scope, key string, rule ThrottleRule, now time.Time) (time.Duration, error) {
	const op = "fail throttle"
	if err := rule.check(op); err != nil {
		return 0, err
	}
	k, err := s.thrOpen(op, scope, key)
	if err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	release, err := s.thrSlot(true)
	if err != nil {
		return 0, thrBusy(op, err)
	}
	defer release()
	t := now.UnixNano()
	var lock time.Duration
	var count int
	err = s.updateThrottle(op, func(txn Txn) error {
		rec, found, _, err := loadThrottle(txn, k, t)
		if err != nil {
			return err
		}
		lock = rule.fail(&rec, t)
		count, err = saveThrottle(txn, scope, k, &rec, found, now)
		return err
	})
	if err != nil {
		return 0, err
	}
	s.maybePruneThrottle(scope, rule.maxKeys(), count, now, k)
	return lock, nil
}

// CheckThrottle tells whether key is locked at now, without counting
// anything. The first refusal of a lock is recorded as reported. Like
// ReserveThrottle it answers a key known locked from memory, and fails
// with ErrThrottleBusy when too many throttle transactions are in flight.
func (s *Store) CheckThrottle(scope, key string, now time.Time) (ThrottleVerdict, error) {
	const op = "check throttle"
	k, err := s.thrOpen(op, scope, key)
	if err != nil {
		return ThrottleVerdict{}, err
	}
	if err := s.enter(); err != nil {
		return ThrottleVerdict{}, err
	}
	defer s.leave()
	t := now.UnixNano()
	d, epoch := s.thr.memo.refused(k, t)
	if d > 0 {
		return ThrottleVerdict{Locked: true, RetryAfter: d}, nil
	}
	release, err := s.thrSlot(false)
	if err != nil {
		return ThrottleVerdict{}, thrBusy(op, err)
	}
	defer release()
	var verdict ThrottleVerdict
	read := func(txn Txn) (throttleRecord, error) {
		rec, _, _, err := loadThrottle(txn, k, t)
		if err != nil {
			return rec, err
		}
		verdict = ThrottleVerdict{}
		if t < rec.Until {
			verdict = ThrottleVerdict{Locked: true, RetryAfter: time.Duration(rec.Until - t), FirstRefusal: !rec.Reported}
		}
		return rec, nil
	}
	// The common answers (not locked, or locked and reported) need no
	// write transaction.
	if err := s.view(func(txn Txn) error { _, err := read(txn); return err }); err != nil {
		return ThrottleVerdict{}, err
	}
	if verdict.FirstRefusal {
		err = s.updateThrottle(op, func(txn Txn) error {
			rec, err := read(txn)
			if err != nil || !verdict.FirstRefusal {
				return err
			}
			rec.Reported = true
			_, err = setJSON(txn, k, &rec, thrTTL(rec.Expires, now))
			return err
		})
		if err != nil {
			return ThrottleVerdict{}, err
		}
	}
	if verdict.Locked {
		s.thr.memo.refuse(k, t+int64(min(verdict.RetryAfter, thrMemoLockTTL)), t+int64(verdict.RetryAfter), epoch)
	}
	return verdict, nil
}

// RefundThrottle takes a reserved failure back: the attempt was not
// checked, or it succeeded on a key that a success does not reset. The
// lock the reservation started is lifted unless a later attempt (on any
// process) has changed it since; a later lock stays. Refunding a ticket
// whose key was reset or forgotten since changes nothing. The caller
// refunds a ticket at most once. It waits for a throttle transaction
// slot: a refund must not be lost to a flood.
func (s *Store) RefundThrottle(ticket *ThrottleTicket, now time.Time) error {
	const op = "refund throttle"
	if ticket == nil {
		return nil
	}
	k := ticket.k
	if k == nil {
		var err error
		if k, err = s.thrOpen(op, ticket.Scope, ticket.Key); err != nil {
			return err
		}
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	release, err := s.thrSlot(true)
	if err != nil {
		return thrBusy(op, err)
	}
	defer release()
	t := now.UnixNano()
	err = s.updateThrottle(op, func(txn Txn) error {
		rec, _, live, err := loadThrottle(txn, k, t)
		if err != nil || !live {
			return err // reset or forgotten since: nothing left to take back
		}
		if rec.Failures > 0 {
			rec.Failures--
		}
		if rec.Until == ticket.until {
			rec.Until = ticket.prev
		}
		// The record still expires where it did: its last failure is
		// not undone, only counted out.
		_, err = setJSON(txn, k, &rec, thrTTL(rec.Expires, now))
		return err
	})
	// A refusal seen here meanwhile may have been of the lock just lifted.
	s.thr.memo.forget(k)
	return err
}

// ResetThrottle forgets key's failures, after a success. Like a refund it
// waits for a throttle transaction slot.
func (s *Store) ResetThrottle(scope, key string) error {
	const op = "reset throttle"
	k, err := s.thrOpen(op, scope, key)
	if err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	release, err := s.thrSlot(true)
	if err != nil {
		return thrBusy(op, err)
	}
	defer release()
	err = s.updateThrottle(op, func(txn Txn) error {
		ok, err := exists(txn, k)
		if err != nil || !ok {
			return err
		}
		if err := del(txn, k); err != nil {
			return err
		}
		return addCounter(txn, thrCountKey(scope, thrStripe(k)), -1)
	})
	s.thr.memo.forget(k)
	return err
}

// TakeToken is a token bucket per key: each call takes a token; the
// bucket holds at most burst and regains one per every. It reports
// whether a token was there; when not, nothing is taken (a flood does not
// extend the wait) and retry says when the next one will be. The SCIM
// endpoint's failed-authentication limiter is one.
//
// A bucket this process saw empty is answered from memory until its next
// token is due, without a transaction; with too many throttle
// transactions in flight it fails with ErrThrottleBusy.
func (s *Store) TakeToken(scope, key string, burst int, every time.Duration, maxKeys int, now time.Time) (ok bool, retry time.Duration, err error) {
	const op = "take token"
	if burst <= 0 || every <= 0 || maxKeys < 0 {
		return false, 0, invalid(op, "bucket of %d per %v", burst, every)
	}
	if maxKeys == 0 {
		maxKeys = defaultThrottleMaxKeys
	}
	k, err := s.thrOpen(op, scope, key)
	if err != nil {
		return false, 0, err
	}
	if err := s.enter(); err != nil {
		return false, 0, err
	}
	defer s.leave()
	t := now.UnixNano()
	d, epoch := s.thr.memo.refused(k, t)
	if d > 0 {
		return false, d, nil
	}
	release, err := s.thrSlot(false)
	if err != nil {
		return false, 0, thrBusy(op, err)
	}
	defer release()
	var count int
	var left float64
	err = s.updateThrottle(op, func(txn Txn) error {
		ok, retry, count = false, 0, 0
		rec, found, live, err := loadThrottle(txn, k, t)
		if err != nil {
			return err
		}
		tokens := float64(burst)
		if live {
			tokens = min(tokens, rec.Tokens+float64(max(0, t-rec.Last))/float64(every))
		}
		left = tokens
		if tokens < 1 {
			retry = time.Duration((1 - tokens) * float64(every))
			return nil
		}
		ok = true
		tokens--
		left = tokens
		// The record lasts until the bucket is full again, when it is as
		// good as absent.
		rec = throttleRecord{Last: t, Tokens: tokens, Expires: t + int64((float64(burst)-tokens)*float64(every))}
		count, err = saveThrottle(txn, scope, k, &rec, found, now)
		return err
	})
	if err != nil {
		return false, 0, err
	}
	if left < 1 {
		// Empty until the next token is due, whoever takes from it.
		next := t + int64((1-left)*float64(every))
		s.thr.memo.refuse(k, next, next, epoch)
	}
	s.maybePruneThrottle(scope, maxKeys, count, now, k)
	return ok, retry, nil
}

// CountThrottle is the number of live records in scope (for tests and
// diagnostics; it scans the scope).
func (s *Store) CountThrottle(scope string, now time.Time) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	n, t := 0, now.UnixNano()
	err := s.view(func(txn Txn) error {
		return listJSON(txn, scanPrefix(pThr, scope), 0, -1, func(b []byte) error {
			var rec throttleRecord
			if err := json.Unmarshal(b, &rec); err != nil {
				return err
			}
			if t < rec.Expires {
				n++
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("store: count throttle %q: %w", scope, err)
	}
	return n, nil
}

// maybePruneThrottle asks for scope to be pruned when a stripe of its
// record count passed its share of maxKeys. Expired records leave without
// lowering the count, so the count only ever overestimates and a prune
// recounts. The prune runs in the background (throttlePruner): the
// request that crossed the line does not pay for a scan of the scope.
func (s *Store) maybePruneThrottle(scope string, maxKeys, stripeCount int, now time.Time, just []byte) {
	if stripeCount == 0 || stripeCount <= max(1, maxKeys/thrStripes) {
		return
	}
	s.askPrune(scope, maxKeys, now, just)
}

// pruneThrottle drops scope's records that would start from zero anyway
// and, if more than nine tenths of maxKeys remain, the oldest (by last
// failure) down to that, never the record just written (just), whose
// creation asked for room: an attacker who fills the scope with fresh keys
// can thus release old locks, but only by failing maxKeys/10 times, which
// the per-source throttle slows down. It scans a snapshot and then deletes
// without reading, so that it does not conflict with (or retry behind)
// the failures counted meanwhile; one of those whose record it deletes is
// forgotten, as an eviction would forget it. Each of its transactions
// waits for a throttle transaction slot, so pruning takes no more of the
// pool than the requests may.
func (s *Store) pruneThrottle(scope string, maxKeys int, now time.Time, just []byte) error {
	type aged struct {
		k    []byte
		last int64
	}
	var live []aged
	var stale [][]byte
	var seen [thrStripes]int // the stripe counts the snapshot saw
	t, p := now.UnixNano(), scanPrefix(pThr, scope)
	release, err := s.thrSlot(true) // the scan holds a connection too
	if err != nil {
		return err
	}
	err = s.view(func(txn Txn) error {
		for i := range thrStripes {
			n, err := counter(txn, thrCountKey(scope, i))
			if err != nil {
				return err
			}
			seen[i] = n
		}
		// One ordered scan of keys and values: a read per key would be
		// a round trip each on PostgreSQL.
		it := txn.Iterator(IterOptions{Prefix: p})
		defer it.Close()
		for it.Seek(p); it.Valid(); it.Next() {
			k := bytes.Clone(it.Key())
			v, err := it.Value()
			if err != nil {
				return fmt.Errorf("store: read %q: %w", k, err)
			}
			var rec throttleRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("store: decode %q: %w", k, err)
			}
			switch {
			case t >= rec.Expires:
				stale = append(stale, k)
			case bytes.Equal(k, just):
				live = append(live, aged{k, math.MaxInt64}) // sorts last: kept
			default:
				live = append(live, aged{k, rec.Last})
			}
		}
		return nil
	})
	release()
	if err != nil {
		return err
	}
	keep := maxKeys * 9 / 10
	if len(live) > keep {
		slices.SortFunc(live, func(a, b aged) int { return cmp.Compare(a.last, b.last) })
		for _, a := range live[:len(live)-keep] {
			stale = append(stale, a.k)
		}
		live = live[len(live)-keep:]
	}
	write := func(fn func(txn Txn) error) error {
		release, err := s.thrSlot(true)
		if err != nil {
			return err
		}
		defer release()
		return s.updateThrottle("prune throttle", fn)
	}
	for len(stale) > 0 {
		batch := stale[:min(len(stale), purgeBatch)]
		stale = stale[len(batch):]
		if err := write(func(txn Txn) error {
			for _, k := range batch {
				if err := del(txn, k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	// Each stripe's count loses what the snapshot counted beyond the live
	// records it kept; records created since the snapshot stay counted.
	var kept [thrStripes]int
	for _, a := range live {
		kept[thrStripe(a.k)]++
	}
	return write(func(txn Txn) error {
		for i := range thrStripes {
			ck := thrCountKey(scope, i)
			n, err := counter(txn, ck)
			if err != nil {
				return err
			}
			n = max(kept[i], n-(seen[i]-kept[i]))
			if _, err := setJSON(txn, ck, n, 0); err != nil {
				return err
			}
		}
		return nil
	})
}

// updateThrottle is the write path of throttle counters: not synced
// (Backend.UpdateNoSync), see the top of this file for why a crash may
// lose them. Atomicity and isolation are kept: the check and the count
// are still one serializable transaction.
func (s *Store) updateThrottle(op string, fn func(txn Txn) error) error {
	return s.updateNoSync(op, fn)
}
