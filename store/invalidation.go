package store

import (
	"bytes"
	"hash/fnv"
	"slices"
	"strconv"
	"sync/atomic"
)

// Precise invalidation.
//
// A caller that derives something from records (the gateway's per-request
// re-check: is this session's user still active, in the admin group, their
// org still active?) may reuse it until a write changes one of those
// records. Every write transaction is mapped, from the keys it wrote, onto
// the watch keys it can change — its organization, a user (record or group
// memberships), a session — and a counter per watch key moves on after the
// commit. Writes that change nothing a caller derives from (audit events,
// sign-in attempts, the replay cache, counters, throttles, AuthnRequests)
// move nothing, so an IdP syncing other users or an audit trail being
// written no longer sends every session back to the full re-check.
//
// Counters live in a fixed table indexed by a hash of the watch key: two
// keys sharing a slot only cost each other a spurious re-check, and memory
// stays bounded whatever the number of users. Across processes on one
// backend (PostgreSQL), each commit publishes its slot numbers (never a
// user or session ID) and every other process moves the same slots; while
// that channel is down, Watch reports that nothing may be reused.

// markSlots is the size of the counter table (a power of two).
const markSlots = 1 << 14

// changeAll is the published change meaning "anything may have changed".
const changeAll = "*"

// changeFormat opens every published list of changes: the slot count,
// the hash and the watch keys are this version's. A process that finds
// another version (a rolling upgrade that changed them) treats the list
// as "everything changed" rather than moving the wrong slots.
const changeFormat = "v1:14"

type changeMarks struct {
	// epoch moves on when every watch key must be considered changed: a
	// write the mapping cannot place, a lost or regained notification
	// channel.
	epoch atomic.Uint64
	// live is false while changes made by other processes may go unseen.
	live  atomic.Bool
	slots [markSlots]atomic.Uint64
}

// slotOf is where watch key k is counted. Slots are published by number,
// so the hash must be the same in every process: FNV-1a, not a seeded
// maphash.
func slotOf(k string) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(k))
	return int(h.Sum64() & (markSlots - 1))
}

// Watch is a snapshot of the counters of some watch keys, taken before
// the records they cover are read.
type Watch struct {
	ok    bool
	epoch uint64
	n     int
	slot  [4]int32
	val   [4]uint64
}

// Watch keys: what a caller can ask to be told about.

// WatchOrg covers an organization's record, domains and which groups its
// group names and IDs resolve to (the name and externalId indexes).
func WatchOrg(orgID string) string { return "o/" + orgID }

// WatchUser covers a user's record and group memberships.
func WatchUser(orgID, userID string) string { return "u/" + orgID + "/" + userID }

// WatchSession covers a session record (its deletion at logout included).
func WatchSession(id string) string { return "s/" + id }

// Watch starts a snapshot covering keys (see WatchOrg and friends). The
// result is reusable only while Changed says false. At most four keys.
func (s *Store) Watch(keys ...string) Watch {
	w := Watch{ok: s.marks.live.Load(), epoch: s.marks.epoch.Load()}
	return w.With(s, keys...)
}

// With adds keys to w, read now: call it before reading the records they
// cover.
func (w Watch) With(s *Store, keys ...string) Watch {
	for _, k := range keys {
		if w.n == len(w.slot) {
			w.ok = false
			return w
		}
		i := slotOf(k)
		w.slot[w.n] = int32(i)
		w.val[w.n] = s.marks.slots[i].Load()
		w.n++
	}
	return w
}

// ChangesLive reports whether this process hears every write that can
// change what it caches: always with Badger (one process), and with
// PostgreSQL while its change listener is connected and its heartbeats are
// fresh. While it is false, Changed says true and every re-check is done
// in full.
func (s *Store) ChangesLive() bool { return s.marks.live.Load() }

// Changed reports whether anything w covers may have changed since it was
// taken (always true for a Watch taken while changes could be missed).
func (s *Store) Changed(w Watch) bool {
	if !w.ok || !s.marks.live.Load() || s.marks.epoch.Load() != w.epoch {
		return true
	}
	for i := 0; i < w.n; i++ {
		if s.marks.slots[w.slot[i]].Load() != w.val[i] {
			return true
		}
	}
	return false
}

// recordingTxn notes the keys a write transaction writes, to know what it
// may have changed.
type recordingTxn struct {
	Txn
	changed []int // slots
	all     bool
	stripes []int // stripeCache slots of the stored-bytes stripes written
	held    []int // stripes marked busy for the commit (stripeCache.hold)
}

func (t *recordingTxn) Set(k, v []byte, expiresAt uint64) error {
	t.note(k)
	return t.Txn.Set(k, v, expiresAt)
}

func (t *recordingTxn) Delete(k []byte) error {
	t.note(k)
	return t.Txn.Delete(k)
}

func (t *recordingTxn) note(k []byte) {
	if isStripeKey(k) {
		if i := stripeSlot(k); !slices.Contains(t.stripes, i) {
			t.stripes = append(t.stripes, i)
		}
	}
	if t.all {
		return
	}
	w, ok := watchKeyOf(k)
	if !ok {
		t.all = true
		return
	}
	if w == "" {
		return
	}
	i := slotOf(w)
	for _, j := range t.changed {
		if j == i {
			return
		}
	}
	t.changed = append(t.changed, i)
}

// changes is what the transaction publishes to other processes.
func (t *recordingTxn) changes() []string {
	if t.all {
		return []string{changeAll}
	}
	if len(t.changed) == 0 {
		return nil
	}
	out := make([]string, 1, 1+len(t.changed))
	out[0] = changeFormat
	for _, j := range t.changed {
		out = append(out, strconv.FormatUint(uint64(j), 16))
	}
	return out
}

// localChange moves the counters a transaction of this process touched.
func (m *changeMarks) localChange(t *recordingTxn) {
	if t.all {
		m.epoch.Add(1)
		return
	}
	for _, i := range t.changed {
		m.slots[i].Add(1)
	}
}

// remoteChange applies the changes another process published.
func (m *changeMarks) remoteChange(keys []string) {
	if len(keys) == 0 || keys[0] != changeFormat {
		m.epoch.Add(1)
		return
	}
	for _, k := range keys[1:] {
		i, err := strconv.ParseUint(k, 16, 32)
		if k == changeAll || err != nil || i >= markSlots {
			m.epoch.Add(1)
			continue
		}
		m.slots[i].Add(1)
	}
}

// setLive records whether other processes' changes are being received.
// Both transitions move the epoch: entries from before a loss may have
// missed a change, and so may anything read during it.
func (m *changeMarks) setLive(live bool) {
	m.epoch.Add(1)
	m.live.Store(live)
	m.epoch.Add(1)
}

// watchKeyOf maps a written store key onto the watch key it can change:
// "" for keys no caller watches, ok=false for a key the mapping does not
// know (which then counts as changing everything — a new key prefix
// without an entry here errs on the safe side).
func watchKeyOf(k []byte) (w string, ok bool) {
	prefix, rest, _ := bytes.Cut(k, []byte{'/'})
	seg := func(n int) string {
		parts := bytes.SplitN(rest, []byte{'/'}, n+2)
		if len(parts) <= n {
			return ""
		}
		return unesc(string(parts[n]))
	}
	switch string(prefix) {
	case pOrg, pOrgLive, pOrgDel, pDom, pGName, pGExt:
		return WatchOrg(seg(0)), true
	case pUser, pGMem:
		return WatchUser(seg(0), seg(1)), true
	case pSess:
		return WatchSession(seg(0)), true
	case pVDom:
		// Which org held the domain is in the value, not the key; a
		// verified domain changes rarely, so everything is re-checked.
		return "", false
	case pGrp:
		// The group record (its member list) is what SCIM rewrites on
		// every membership change, but no watcher reads it: a re-check
		// reads which group a mapping names (pGName, pGExt, written only
		// when those change) and one user's membership (pGMem, under
		// WatchUser). Mapping it onto the org would send every session of
		// the org back to the full re-check on each membership change of
		// anyone, the load of an IdP syncing its directory.
		return "", true
	case pUName, pUExt, pUMail, pUDel, pSessOrg, pSessUser, pSessName,
		pAuthn, pAuthnB, pAuthnOrg, pReplay, pAudit, pSecret, pCount,
		pMeta, pSignIn, pLInv, pLInvUser, pLMail, pThr, pThrN, pFlash:
		// Indexes written with their record (which is watched), and
		// records no re-check reads.
		return "", true
	}
	return "", false
}
