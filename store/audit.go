package store

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.uber.org/zap"
)

// Defaults of AuditPolicy.
const (
	DefaultAuditMaxAge    = 90 * 24 * time.Hour
	DefaultAuditMaxEvents = 100_000
	DefaultAuditWindow    = time.Minute
)

// MaxAuditSamples bounds the distinct actors and sources an aggregated
// event lists.
const MaxAuditSamples = 10

// maxAggregatedText bounds each string of an aggregated event (actor,
// source, detail values): strangers choose them (a typed address, an
// error quoting their input), and aggregates are held in memory.
const maxAggregatedText = 512

const (
	// maxOpenPerOrg bounds the kinds of aggregated event one organization
	// may have counting at once; past it, further kinds in the same
	// window are counted together per action and outcome, so a stranger
	// who varies what goes into an event cannot make it one write per
	// request.
	maxOpenPerOrg = 32
	// maxOpenAggregates bounds the aggregates held in memory overall;
	// reaching it writes them all out.
	maxOpenAggregates = 10_000
	// auditTick is how often the aggregates whose window has ended are
	// written and due prunes run.
	auditTick = time.Second
	// auditPruneEvery is how often every trail is pruned by age, on top
	// of the prunes by age and count that appends trigger.
	auditPruneEvery = time.Hour
)

// AuditPolicy bounds the audit trail. Zero fields take the defaults.
type AuditPolicy struct {
	// MaxAge: older events are deleted (default 90 days).
	MaxAge time.Duration
	// MaxEvents: each organization's trail, and the gateway-wide one,
	// keeps about this many of its newest events (default 100,000). It
	// may exceed it by one percent between prunes.
	MaxEvents int
	// Window: the occurrences of an aggregated event within this long of
	// the first become one event with a count (default 1 minute).
	Window time.Duration
}

func (p AuditPolicy) withDefaults() AuditPolicy {
	if p.MaxAge <= 0 {
		p.MaxAge = DefaultAuditMaxAge
	}
	if p.MaxEvents <= 0 {
		p.MaxEvents = DefaultAuditMaxEvents
	}
	if p.Window <= 0 {
		p.Window = DefaultAuditWindow
	}
	return p
}

// pruneEvery is how many appends to one trail trigger its prune: often
// enough to keep it within one percent of MaxEvents, seldom enough that
// the prune's scan costs little per append.
func (p AuditPolicy) pruneEvery() int { return max(1, p.MaxEvents/100) }

// auditState is the audit trail's in-memory part: aggregates still
// counting, and which trails are due for pruning. Guarded by mu.
type auditState struct {
	mu       sync.Mutex
	policy   AuditPolicy
	open     map[aggKey]*AuditEvent
	perOrg   map[string]int      // open aggregates per org
	appends  map[string]int      // events written per org since its last prune
	due      map[string]struct{} // orgs to prune by age and count
	pruneAll bool                // every org by age and count (at start, on a new policy)
	ageAll   bool                // every org by age only (hourly)
	wake     chan struct{}
	// sizes bounds each trail's length from above where this process is
	// the only writer (see trailSize); nil entries are unknown.
	sizes map[string]*trailSize
}

// trailSize lets a prune by count skip its scan. Counting the newest
// MaxEvents events costs a scan of the whole trail while it is shorter
// than that, every MaxEvents/100 appends: during an IdP's first import
// into a large organization, work per creation growing with the
// directory. Where no other process writes (Badger), every event is
// appended through countAuditAppends, so the length a scan found plus
// the appends since bounds the trail from above, and while that bound is
// under MaxEvents only the prune by age (which reads just the doomed
// events) has anything to do.
type trailSize struct {
	appended uint64 // events appended by this process, ever
	bound    int    // the trail has at most this many events
	known    bool   // bound holds (a scan has been done)
}

// aggKey identifies identical occurrences: same org, action, outcome and
// details.
type aggKey struct {
	org, action, outcome, details string
	coarse                        bool
}

func newAggKey(e *AuditEvent) aggKey {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(e.Details)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(e.Details[k])
		b.WriteByte(0)
	}
	return aggKey{org: e.OrgID, action: e.Action, outcome: e.Outcome, details: b.String()}
}

// startAudit sets the audit state up and starts its background task; Open
// calls it.
func (s *Store) startAudit(p AuditPolicy) {
	s.audit = auditState{
		policy:   p.withDefaults(),
		open:     map[aggKey]*AuditEvent{},
		perOrg:   map[string]int{},
		appends:  map[string]int{},
		due:      map[string]struct{}{},
		sizes:    map[string]*trailSize{},
		pruneAll: true,
		wake:     make(chan struct{}, 1),
	}
	s.wg.Add(1)
	go s.auditLoop()
}

// SetAuditPolicy changes the audit trail's bounds (a config reload does)
// and, if they changed, prunes every trail by the new ones in the
// background.
func (s *Store) SetAuditPolicy(p AuditPolicy) {
	a := &s.audit
	a.mu.Lock()
	p = p.withDefaults()
	changed := p != a.policy
	a.policy = p
	a.pruneAll = a.pruneAll || changed
	a.mu.Unlock()
	if changed {
		s.wakeAudit()
	}
}

// AuditPolicy returns the bounds in force.
func (s *Store) AuditPolicy() AuditPolicy {
	s.audit.mu.Lock()
	defer s.audit.mu.Unlock()
	return s.audit.policy
}

func (s *Store) wakeAudit() {
	select {
	case s.audit.wake <- struct{}{}:
	default:
	}
}

// auditKey orders an org's events newest first: the time segment is the
// bitwise complement of the Unix nanoseconds, fixed width in hex.
func auditKey(e *AuditEvent) []byte {
	return key(pAudit, e.OrgID, auditTimeSegment(e.Time), e.ID)
}

func auditTimeSegment(t time.Time) string {
	ns := max(t.UnixNano(), 0)
	return fmt.Sprintf("%016x", math.MaxUint64-uint64(ns))
}

// auditKeyTime reads the time back from an event's key, without its value.
func auditKeyTime(prefix, k []byte) (time.Time, bool) {
	seg, _, ok := bytes.Cut(k[len(prefix):], []byte{'/'})
	if !ok || len(seg) != 16 {
		return time.Time{}, false
	}
	c, err := strconv.ParseUint(string(seg), 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(math.MaxUint64-c)), true
}

// AppendAudit records an event. It assigns ID when empty and Time when
// zero; e is updated in place on success. Events with an empty OrgID are
// gateway-wide.
func (s *Store) AppendAudit(e *AuditEvent) error {
	const op = "append audit"
	c, err := newAuditEvent(op, e)
	if err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.writeAudit(op, []*AuditEvent{c}); err != nil {
		return err
	}
	*e = *c
	return nil
}

func newAuditEvent(op string, e *AuditEvent) (*AuditEvent, error) {
	if e == nil {
		return nil, invalid(op, "nil event")
	}
	if err := need(op, "action", e.Action); err != nil {
		return nil, err
	}
	c := *e
	if c.ID == "" {
		c.ID = uuid.NewString()
	}
	if c.Time.IsZero() {
		c.Time = now()
	}
	c.Details = maps.Clone(e.Details)
	return &c, nil
}

// AppendAuditAggregated records an event that may repeat many times, such
// as a failed authentication that anyone can cause: the occurrences with
// the same org, action, outcome and details within the policy's Window
// become one event whose Count, First, Actors and Sources sum them up. It
// is held in memory until its window ends (or the org's trail is read, or
// the store closes), so a crash loses at most a window of them. Unlike
// AppendAudit, e is not updated: the event it joins is written later.
func (s *Store) AppendAuditAggregated(e *AuditEvent) error {
	const op = "append aggregated audit"
	c, err := newAuditEvent(op, e)
	if err != nil {
		return err
	}
	c.Actor, c.SourceIP = clipText(c.Actor), clipText(c.SourceIP)
	for k, v := range c.Details {
		c.Details[k] = clipText(v)
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()

	a := &s.audit
	var out []*AuditEvent
	a.mu.Lock()
	k := newAggKey(c)
	agg := a.open[k]
	if agg == nil && a.perOrg[k.org] >= maxOpenPerOrg {
		k = aggKey{org: c.OrgID, action: c.Action, outcome: c.Outcome, coarse: true}
		c.Details = map[string]string{"aggregated": fmt.Sprintf("more than %d kinds of repeated event for this organization within %s; the details of these are not kept", maxOpenPerOrg, a.policy.Window)}
		agg = a.open[k]
	}
	if agg != nil && c.Time.Sub(agg.First) >= a.policy.Window {
		out = append(out, agg)
		a.remove(k)
		agg = nil
	}
	if agg != nil {
		agg.absorb(c)
		a.mu.Unlock()
		return nil
	}
	if len(a.open) >= maxOpenAggregates {
		for k, agg := range a.open {
			out = append(out, agg)
			a.remove(k)
		}
	}
	c.Count, c.First = 1, c.Time
	c.Actors, c.Sources = addSample(nil, c.Actor), addSample(nil, c.SourceIP)
	a.open[k] = c
	a.perOrg[k.org]++
	a.mu.Unlock()
	return s.writeAudit(op, out)
}

func (a *auditState) remove(k aggKey) {
	delete(a.open, k)
	if a.perOrg[k.org]--; a.perOrg[k.org] <= 0 {
		delete(a.perOrg, k.org)
	}
}

// absorb counts occurrence e into aggregate a.
func (a *AuditEvent) absorb(e *AuditEvent) {
	a.Count++
	if e.Time.After(a.Time) {
		a.Time = e.Time
	}
	if e.Time.Before(a.First) {
		a.First = e.Time
	}
	a.Actors = addSample(a.Actors, e.Actor)
	a.Sources = addSample(a.Sources, e.SourceIP)
}

// clipText cuts s to maxAggregatedText bytes, on a character boundary.
func clipText(s string) string { return clipTo(s, maxAggregatedText) }

// clipTo cuts s to max bytes, on a character boundary.
func clipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func addSample(list []string, v string) []string {
	if v == "" || len(list) >= MaxAuditSamples || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// flushAudit writes the aggregates whose window has ended, or all of them
// (all), or all of one org's (org != nil).
func (s *Store) flushAudit(all bool, org *string) error {
	a := &s.audit
	var out []*AuditEvent
	a.mu.Lock()
	t := now()
	for k, agg := range a.open {
		if all || (org != nil && k.org == *org) || (org == nil && t.Sub(agg.First) >= a.policy.Window) {
			out = append(out, agg)
			a.remove(k)
		}
	}
	a.mu.Unlock()
	return s.writeAudit("flush audit", out)
}

// writeAudit stores events (an aggregate of one occurrence as a plain
// event) and counts them towards their trail's next prune. It does not
// call enter: Close's final flush runs after the store is marked closed.
func (s *Store) writeAudit(op string, events []*AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	for _, e := range events {
		if e.Count == 1 {
			e.Count, e.First, e.Actors, e.Sources = 0, time.Time{}, nil, nil
		}
	}
	for chunk := range slices.Chunk(events, purgeBatch) {
		if err := s.writeAuditChunk(op, chunk); err != nil {
			return err
		}
	}
	return nil
}

// writeAuditChunk writes events in one transaction or, when that is more
// than the backend takes in one (aggregates and imported events may be
// large), in halves. Each committed part is counted at once, so that a
// later part's failure leaves no committed event uncounted.
func (s *Store) writeAuditChunk(op string, events []*AuditEvent) error {
	err := s.update(op, func(txn Txn) error {
		for _, e := range events {
			if _, err := setJSON(txn, auditKey(e), e, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrTxnTooBig) && len(events) > 1 {
		if err := s.writeAuditChunk(op, events[:len(events)/2]); err != nil {
			return err
		}
		return s.writeAuditChunk(op, events[len(events)/2:])
	}
	if err != nil {
		s.auditWriteFailed(events)
		return err
	}
	s.countAuditAppends(events)
	return nil
}

// auditWriteFailed forgets the length bound of the trails events were
// meant for: a write that reports failure may still have committed
// (Badger fails every write of a batch when one of them fails), and an
// uncounted event would let the trail's prune by count be skipped past
// MaxEvents. The next prune of those trails counts them again.
func (s *Store) auditWriteFailed(events []*AuditEvent) {
	if !s.soleWriter {
		return
	}
	a := &s.audit
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range events {
		if ts := a.sizes[e.OrgID]; ts != nil {
			ts.known = false
		}
	}
}

// countAuditAppends counts written events towards their trails' next
// prune, and wakes the pruner when one is due.
func (s *Store) countAuditAppends(events []*AuditEvent) {
	a := &s.audit
	a.mu.Lock()
	every := a.policy.pruneEvery()
	wake := false
	for _, e := range events {
		if s.soleWriter && a.sizes != nil {
			ts := a.sizes[e.OrgID]
			if ts == nil {
				ts = &trailSize{}
				a.sizes[e.OrgID] = ts
			}
			ts.appended++
			ts.bound++
		}
		if a.appends[e.OrgID]++; a.appends[e.OrgID] >= every {
			delete(a.appends, e.OrgID)
			a.due[e.OrgID] = struct{}{}
			wake = true
		}
	}
	a.mu.Unlock()
	if wake {
		s.wakeAudit()
	}
}

// auditLoop writes aggregates whose window has ended and prunes trails,
// until the store closes; then it writes the aggregates still open.
func (s *Store) auditLoop() {
	defer s.wg.Done()
	t := time.NewTicker(auditTick)
	defer t.Stop()
	lastFull := time.Now()
	for {
		select {
		case <-s.stop:
			if err := s.flushAudit(true, nil); err != nil {
				s.log.Error("writing aggregated audit events at close", zap.Error(err))
			}
			return
		case <-t.C:
		case <-s.audit.wake:
		}
		if err := s.flushAudit(false, nil); err != nil {
			s.log.Error("writing aggregated audit events", zap.Error(err))
		}
		if time.Since(lastFull) >= auditPruneEvery {
			lastFull = time.Now()
			s.audit.mu.Lock()
			s.audit.ageAll = true
			s.audit.mu.Unlock()
		}
		s.runPrunes()
	}
}

// runPrunes prunes the trails that are due.
func (s *Store) runPrunes() {
	a := &s.audit
	a.mu.Lock()
	due := slices.Collect(maps.Keys(a.due))
	clear(a.due)
	all, ageAll := a.pruneAll, a.ageAll && !a.pruneAll
	a.pruneAll, a.ageAll = false, false
	p := a.policy
	a.mu.Unlock()
	byCount := map[string]bool{}
	for _, org := range due {
		byCount[org] = true
	}
	orgs := due
	if all || ageAll {
		var err error
		if orgs, err = s.auditOrgs(); err != nil {
			s.log.Error("listing audit trails to prune", zap.Error(err))
			return
		}
	}
	for _, org := range orgs {
		select {
		case <-s.stop:
			return
		default:
		}
		n, err := s.pruneAudit(org, p, now(), all || byCount[org])
		if err != nil {
			s.log.Error("pruning audit trail", zap.String("org", org), zap.Error(err))
			continue
		}
		if n > 0 {
			s.log.Info("pruned audit trail", zap.String("org", org), zap.Int("deleted", n),
				zap.Duration("max_age", p.MaxAge), zap.Int("max_events", p.MaxEvents))
		}
	}
}

// auditOrgs lists the orgs that have an audit trail ("" for the
// gateway-wide one), deleted orgs included, one seek per org.
func (s *Store) auditOrgs() ([]string, error) {
	var orgs []string
	root := []byte(pAudit + "/")
	err := s.view(func(txn Txn) error {
		it := txn.Iterator(IterOptions{Prefix: root, KeysOnly: true})
		defer it.Close()
		for it.Seek(root); it.Valid(); {
			seg, _, ok := bytes.Cut(it.Key()[len(root):], []byte{'/'})
			if !ok {
				return fmt.Errorf("store: malformed audit key %q", it.Key())
			}
			orgs = append(orgs, unesc(string(seg)))
			// '0' follows '/': the smallest key past this org's events.
			next := append(append(slices.Clip(root), seg...), '0')
			it.Seek(next)
		}
		return nil
	})
	return orgs, err
}

// pruneAudit deletes the org's events older than the policy's MaxAge
// and, with byCount, those beyond its MaxEvents newest; it returns how
// many. Events are stored newest first, so the doomed ones are a tail of
// the org's range: a keys-only scan finds where it starts (from the
// newest when counting, in O(MaxEvents); from the oldest otherwise, in
// O(doomed)), or the backend does where it can skip keys (doomedFrom),
// then it is deleted in batches.
func (s *Store) pruneAudit(orgID string, p AuditPolicy, at time.Time, byCount bool) (int, error) {
	prefix := scanPrefix(pAudit, orgID)
	cutoff := at.Add(-p.MaxAge)
	old := func(k []byte) bool {
		t, ok := auditKeyTime(prefix, k)
		return ok && t.Before(cutoff)
	}
	// Where the trail is known to be short enough, the prune by count
	// has nothing to delete: only the one by age runs (see trailSize).
	var appended0 uint64
	if s.soleWriter {
		a := &s.audit
		a.mu.Lock()
		ts := a.sizes[orgID]
		if ts == nil {
			ts = &trailSize{}
			a.sizes[orgID] = ts
		}
		if byCount && ts.known && ts.bound < p.MaxEvents {
			byCount = false
		}
		// Read before the scan's snapshot: appends counted since may
		// also be in it, which only overstates the bound.
		appended0 = ts.appended
		a.mu.Unlock()
	}
	kept := -1 // events before the doomed ones, when counted
	var from []byte
	err := s.view(func(txn Txn) error {
		if kt, ok := txn.(keyAtTxn); ok {
			var err error
			from, err = doomedFrom(kt, prefix, cutoff, p, byCount)
			return err
		}
		it := txn.Iterator(IterOptions{Prefix: prefix, KeysOnly: true, Reverse: !byCount})
		defer it.Close()
		if !byCount {
			// 0xff sorts after every key of the org: start at its oldest.
			for it.Seek(append(slices.Clip(prefix), 0xff)); it.Valid() && old(it.Key()); it.Next() {
				from = append(from[:0], it.Key()...)
			}
			return nil
		}
		i := 0
		defer func() { kept = i }()
		for it.Seek(prefix); it.Valid(); it.Next() {
			if k := it.Key(); i >= p.MaxEvents || old(k) {
				from = bytes.Clone(it.Key())
				return nil
			}
			i++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	total, complete := 0, false
	if s.soleWriter {
		defer func() { s.prunedTrail(orgID, kept, appended0, total, complete) }()
	}
	if from == nil {
		complete = true
		return 0, nil
	}
	for {
		select {
		case <-s.stop:
			return total, nil
		default:
		}
		var n int
		err := s.update("prune audit", func(txn Txn) error {
			keys := keysWithPrefix(txn, prefix, from, purgeBatch)
			n = len(keys)
			for _, k := range keys {
				if err := del(txn, k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < purgeBatch {
			complete = true
			return total, nil
		}
	}
}

// doomedFrom is where the org's doomed events start (nil: none), found
// without walking the trail where the backend can skip keys (keyAtTxn):
// the first event past the MaxEvents newest when byCount, or the newest
// event older than cutoff, whichever comes first. An event's time segment
// grows as its time falls, so the events older than cutoff are those at
// or after the least key past cutoff's own segment.
func doomedFrom(txn keyAtTxn, prefix []byte, cutoff time.Time, p AuditPolicy, byCount bool) ([]byte, error) {
	// '0' follows '/': past every key with cutoff's own segment.
	cut := append(append(slices.Clip(prefix), auditTimeSegment(cutoff)...), '0')
	from, err := txn.KeyAt(prefix, cut, 0)
	if err != nil || !byCount {
		return from, err
	}
	n, err := txn.KeyAt(prefix, prefix, p.MaxEvents)
	if err != nil {
		return nil, err
	}
	if n != nil && (from == nil || bytes.Compare(n, from) < 0) {
		from = n
	}
	return from, nil
}

// prunedTrail updates the trail's bound after a prune that deleted
// deleted events (all it meant to when complete) and, if it counted,
// found kept events to keep in the snapshot it counted in.
func (s *Store) prunedTrail(orgID string, kept int, appended0 uint64, deleted int, complete bool) {
	a := &s.audit
	a.mu.Lock()
	defer a.mu.Unlock()
	ts := a.sizes[orgID]
	if ts == nil {
		return
	}
	switch {
	case kept >= 0 && complete:
		// What the count kept, and whatever was appended since it
		// started (some of which it may have counted already).
		ts.bound, ts.known = kept+int(ts.appended-appended0), true
	case ts.known:
		// Every deleted event was one the bound counted.
		ts.bound = max(ts.bound-deleted, 0)
	}
}

// ListAudit returns the org's most recent events, newest first, at most
// limit of them (limit <= 0 means 100). orgID "" lists the gateway-wide
// events only, not every org's.
func (s *Store) ListAudit(orgID string, limit int) ([]*AuditEvent, error) {
	events, _, err := s.ListAuditPage(orgID, "", limit)
	return events, err
}

// maxCursorLen bounds a cursor before it is decoded.
const maxCursorLen = 512

// ListAuditPage returns a page of the org's events, newest first: at most
// limit (<= 0 means 100) of those older than the event the cursor before
// names ("" starts at the newest). next is the cursor of the page's last
// event when more may follow, else "". A cursor stays valid while its
// event is pruned: the page starts where the event was. The org's
// aggregates still counting are written first, so the page shows them.
func (s *Store) ListAuditPage(orgID, before string, limit int) (events []*AuditEvent, next string, err error) {
	const op = "list audit"
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	prefix := scanPrefix(pAudit, orgID)
	start := prefix
	if before != "" {
		pos, err := decodeAuditCursor(before)
		if err != nil {
			return nil, "", invalid(op, "cursor %q: %v", before, err)
		}
		start = append(slices.Clip(prefix), pos...)
	}
	if err := s.enter(); err != nil {
		return nil, "", err
	}
	defer s.leave()
	if err := s.flushAudit(false, &orgID); err != nil {
		return nil, "", err
	}
	events = []*AuditEvent{}
	err = s.view(func(txn Txn) error {
		it := txn.Iterator(IterOptions{Prefix: prefix})
		defer it.Close()
		it.Seek(start)
		if before != "" && it.Valid() && bytes.Equal(it.Key(), start) {
			it.Next()
		}
		var last []byte
		for ; it.Valid(); it.Next() {
			if len(events) == limit {
				next = encodeAuditCursor(last[len(prefix):])
				return nil
			}
			v, err := it.Value()
			if err != nil {
				return fmt.Errorf("store: read %q: %w", it.Key(), err)
			}
			e := new(AuditEvent)
			if err := json.Unmarshal(v, e); err != nil {
				return fmt.Errorf("store: decode %q: %w", it.Key(), err)
			}
			events = append(events, e)
			last = append(last[:0], it.Key()...)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return events, next, nil
}

// A cursor is the position of an event within its org's trail ("<time
// segment>/<escaped ID>"), base64url-encoded so that it is one opaque
// token in a URL.
func encodeAuditCursor(pos []byte) string {
	return base64.RawURLEncoding.EncodeToString(pos)
}

func decodeAuditCursor(c string) ([]byte, error) {
	if len(c) > maxCursorLen {
		return nil, fmt.Errorf("too long")
	}
	pos, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, fmt.Errorf("not a cursor this API returned")
	}
	seg, id, ok := bytes.Cut(pos, []byte{'/'})
	if _, err := hex.DecodeString(string(seg)); !ok || err != nil || len(seg) != 16 || len(id) == 0 || bytes.IndexByte(id, '/') >= 0 {
		return nil, fmt.Errorf("not a cursor this API returned")
	}
	return pos, nil
}

// GetOrCreateSecret returns the gateway-wide secret called name, creating it
// with generate the first time. Concurrent first callers all get the same
// value: the check and the write are one transaction, and a loser of the
// race reads the winner's value. generate may be called even if its result
// ends up unused. Secrets are stored unencrypted, like the rest of the
// database: protect the directory.
func (s *Store) GetOrCreateSecret(name string, generate func() ([]byte, error)) ([]byte, error) {
	const op = "get or create secret"
	if err := need(op, "name", name); err != nil {
		return nil, err
	}
	if generate == nil {
		return nil, invalid(op, "nil generator")
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	k := key(pSecret, name)
	var val, fresh []byte
	err := s.update(op, func(txn Txn) error {
		switch err := getJSON(txn, k, &val); {
		case err == nil:
			return nil
		case err != ErrNotFound:
			return err
		}
		if fresh == nil { // generate once, even if the transaction is retried
			var err error
			if fresh, err = generate(); err != nil {
				return fmt.Errorf("store: %s %q: generate: %w", op, name, err)
			}
			if len(fresh) == 0 {
				return invalid(op, "generator returned an empty secret for %q", name)
			}
		}
		val = fresh
		_, err := setJSON(txn, k, fresh, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), val...), nil
}
