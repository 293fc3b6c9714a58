package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAuditAggregatesRepeatedEvents(t *testing.T) {
	s := newTestStore(t)
	denied := func(reason, src, actor string) *AuditEvent {
		return &AuditEvent{OrgID: "acme", Actor: actor, Action: "scim.auth", Outcome: "denied", SourceIP: src,
			Details: map[string]string{"reason": reason}}
	}
	for i := range 1000 {
		must(t, s.AppendAuditAggregated(denied("wrong token", fmt.Sprintf("10.0.%d.%d", i/256, i%256), "scim")))
	}
	must(t, s.AppendAuditAggregated(denied("no bearer token", "10.9.9.9", "scim")))
	must(t, s.AppendAudit(&AuditEvent{OrgID: "acme", Actor: "op", Action: "org.update", Outcome: "success"}))

	ev, err := s.ListAudit("acme", 100)
	must(t, err)
	if len(ev) != 3 {
		t.Fatalf("%d events, want 3: %+v", len(ev), ev)
	}
	byReason := map[string]*AuditEvent{}
	for _, e := range ev {
		byReason[e.Details["reason"]] = e
	}
	w := byReason["wrong token"]
	if w == nil || w.Count != 1000 || len(w.Sources) != MaxAuditSamples || w.SourceIP != "10.0.0.0" ||
		w.First.IsZero() || w.Time.Before(w.First) || len(w.Actors) != 1 {
		t.Errorf("aggregate = %+v", w)
	}
	// A single occurrence reads like a plain event.
	if n := byReason["no bearer token"]; n == nil || n.Count != 0 || !n.First.IsZero() || n.Sources != nil || n.SourceIP != "10.9.9.9" {
		t.Errorf("single occurrence = %+v", n)
	}

	// Reading the trail wrote the aggregates: the next occurrences start
	// new ones rather than changing what was shown.
	must(t, s.AppendAuditAggregated(denied("wrong token", "10.1.1.1", "scim")))
	if ev, _ = s.ListAudit("acme", 100); len(ev) != 4 || ev[0].Count != 0 || ev[0].SourceIP != "10.1.1.1" {
		t.Errorf("after reading: %+v", ev)
	}
}

func TestAuditAggregatesKeepTextShort(t *testing.T) {
	s := newTestStore(t)
	long := strings.Repeat("é", 100_000)
	for range 3 {
		must(t, s.AppendAuditAggregated(&AuditEvent{OrgID: "acme", Actor: long + "@x.test", Action: "login.password", Outcome: "failure",
			SourceIP: long, Details: map[string]string{"reason": long}}))
	}
	ev, err := s.ListAudit("acme", 10)
	must(t, err)
	if len(ev) != 1 || ev[0].Count != 3 {
		t.Fatalf("events = %d", len(ev))
	}
	e := ev[0]
	for _, v := range append([]string{e.Actor, e.SourceIP, e.Details["reason"]}, append(e.Actors, e.Sources...)...) {
		if len(v) > maxAggregatedText+len("…") || !utf8.ValidString(v) || !strings.HasSuffix(v, "…") {
			t.Errorf("kept %d bytes: %.40q", len(v), v)
		}
	}
}

func TestAuditAggregationIsBoundedPerOrg(t *testing.T) {
	s := newTestStore(t)
	// A stranger who controls part of the details (say, an error message)
	// gets no more than maxOpenPerOrg events per window, plus one.
	for i := range 500 {
		must(t, s.AppendAuditAggregated(&AuditEvent{OrgID: "acme", Actor: "anonymous", Action: "login.saml", Outcome: "denied",
			Details: map[string]string{"reason": fmt.Sprint("bad assertion #", i)}}))
	}
	ev, err := s.ListAudit("acme", 1000)
	must(t, err)
	total := 0
	for _, e := range ev {
		total += max(e.Count, 1)
	}
	if len(ev) != maxOpenPerOrg+1 || total != 500 {
		t.Errorf("%d events counting %d occurrences; want %d counting 500", len(ev), total, maxOpenPerOrg+1)
	}
	if s.audit.open == nil || len(s.audit.open) != 0 || len(s.audit.perOrg) != 0 {
		t.Errorf("open aggregates left after reading: %d, %v", len(s.audit.open), s.audit.perOrg)
	}
}

func TestAuditAggregationWindow(t *testing.T) {
	s := newTestStore(t)
	// Times to come, so that the background flush (by the wall clock)
	// leaves the windows alone.
	s.SetAuditPolicy(AuditPolicy{Window: time.Minute})
	t0 := time.Now().UTC().Add(time.Hour).Round(0)
	for _, d := range []time.Duration{0, 30 * time.Second, 59 * time.Second, 60 * time.Second, 61 * time.Second} {
		must(t, s.AppendAuditAggregated(&AuditEvent{OrgID: "acme", Action: "login.password", Outcome: "failure", Time: t0.Add(d)}))
	}
	ev, err := s.ListAudit("acme", 10)
	must(t, err)
	if len(ev) != 2 || ev[0].Count != 2 || !ev[0].First.Equal(t0.Add(time.Minute)) || !ev[0].Time.Equal(t0.Add(61*time.Second)) ||
		ev[1].Count != 3 || !ev[1].First.Equal(t0) || !ev[1].Time.Equal(t0.Add(59*time.Second)) {
		t.Errorf("events = %+v", ev)
	}
}

func TestAuditAggregatesAreWrittenAtClose(t *testing.T) {
	s, dir := openTestStore(t)
	for range 5 {
		must(t, s.AppendAuditAggregated(&AuditEvent{OrgID: "acme", Action: "login.password", Outcome: "failure"}))
	}
	must(t, s.Close())
	s2, err := reopenStore(dir, Options{GCInterval: -1})
	must(t, err)
	defer s2.Close()
	ev, err := s2.ListAudit("acme", 10)
	must(t, err)
	if len(ev) != 1 || ev[0].Count != 5 {
		t.Fatalf("after reopening: %+v", ev)
	}
}

func TestAuditIsPrunedByCountAndAge(t *testing.T) {
	s := newTestStore(t)
	s.SetAuditPolicy(AuditPolicy{MaxEvents: 50, MaxAge: 30 * 24 * time.Hour})
	base := time.Now().Add(-time.Hour)
	for i := range 200 {
		must(t, s.AppendAudit(&AuditEvent{OrgID: "acme", Action: fmt.Sprint("a", i), Time: base.Add(time.Duration(i) * time.Second)}))
	}
	// Events written before this version (no count) and old ones.
	must(t, s.AppendAudit(&AuditEvent{OrgID: "globex", Action: "recent", Time: time.Now().Add(-29 * 24 * time.Hour)}))
	must(t, s.AppendAudit(&AuditEvent{OrgID: "globex", Action: "old", Time: time.Now().Add(-31 * 24 * time.Hour)}))
	must(t, s.AppendAudit(&AuditEvent{Action: "ancient", Time: time.Now().Add(-400 * 24 * time.Hour)}))

	s.audit.mu.Lock()
	s.audit.pruneAll = true
	s.audit.mu.Unlock()
	s.runPrunes()

	ev, err := s.ListAudit("acme", 1000)
	must(t, err)
	if len(ev) != 50 || ev[0].Action != "a199" || ev[49].Action != "a150" {
		t.Errorf("acme kept %d events, %v … %v", len(ev), ev[0].Action, ev[len(ev)-1].Action)
	}
	if ev, _ := s.ListAudit("globex", 10); len(ev) != 1 || ev[0].Action != "recent" {
		t.Errorf("globex = %+v", ev)
	}
	if ev, _ := s.ListAudit("", 10); len(ev) != 0 {
		t.Errorf("gateway-wide = %+v", ev)
	}

	// The hourly pass prunes by age alone, from the oldest end.
	must(t, s.AppendAudit(&AuditEvent{OrgID: "globex", Action: "old again", Time: time.Now().Add(-31 * 24 * time.Hour)}))
	s.audit.mu.Lock()
	s.audit.ageAll = true
	clear(s.audit.due)
	s.audit.mu.Unlock()
	s.runPrunes()
	if ev, _ := s.ListAudit("globex", 10); len(ev) != 1 || ev[0].Action != "recent" {
		t.Errorf("globex after the age pass = %+v", ev)
	}

	// Appends prune on their own, without a full pass: pruneEvery is 1
	// here, so the trail never grows past its bound.
	for i := range 20 {
		must(t, s.AppendAudit(&AuditEvent{OrgID: "acme", Action: fmt.Sprint("b", i)}))
	}
	s.runPrunes()
	if ev, _ := s.ListAudit("acme", 1000); len(ev) != 50 || ev[0].Action != "b19" {
		t.Errorf("after more appends: %d events, newest %v", len(ev), ev[0].Action)
	}
}

func TestAuditPaging(t *testing.T) {
	s := newTestStore(t)
	base := time.Now().Add(-time.Hour)
	for i := range 250 {
		must(t, s.AppendAudit(&AuditEvent{OrgID: "acme", Action: fmt.Sprint(i), Time: base.Add(time.Duration(i) * time.Second)}))
	}
	must(t, s.AppendAudit(&AuditEvent{OrgID: "acme-2", Action: "other org"}))
	var seen []string
	cursor, pages := "", 0
	for {
		ev, next, err := s.ListAuditPage("acme", cursor, 100)
		must(t, err)
		pages++
		for _, e := range ev {
			seen = append(seen, e.Action)
		}
		if next == "" {
			break
		}
		if len(ev) != 100 {
			t.Fatalf("page %d has %d events and a next cursor", pages, len(ev))
		}
		cursor = next
	}
	if pages != 3 || len(seen) != 250 || seen[0] != "249" || seen[249] != "0" {
		t.Fatalf("%d pages, %d events (%v … %v)", pages, len(seen), seen[0], seen[len(seen)-1])
	}
	for i, a := range seen {
		if a != fmt.Sprint(249-i) {
			t.Fatalf("event %d is %s", i, a)
		}
	}

	// A page that ends exactly at the last event has no next cursor.
	_, next, err := s.ListAuditPage("acme", "", 250)
	must(t, err)
	if next != "" {
		t.Errorf("next = %q after the last event", next)
	}

	// A cursor survives the deletion of its event.
	ev, next, err := s.ListAuditPage("acme", "", 10)
	must(t, err)
	must(t, s.deletePrefix(auditKey(ev[9])))
	ev, _, err = s.ListAuditPage("acme", next, 1)
	must(t, err)
	if len(ev) != 1 || ev[0].Action != "239" {
		t.Errorf("after the cursor's event went: %+v", ev)
	}

	for _, bad := range []string{"x", "%%%", encodeAuditCursor([]byte("nothex0000000000/id")), encodeAuditCursor([]byte("0000000000000000")),
		encodeAuditCursor([]byte("0000000000000000/a/b")), string(make([]byte, maxCursorLen+1))} {
		if _, _, err := s.ListAuditPage("acme", bad, 10); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

// TestAuditPruneByCountSkipsShortTrails: where this process is the only
// writer, a trail known to be shorter than MaxEvents is not scanned by
// the prune by count (only the prune by age runs), and once appends may
// have taken it past MaxEvents it is counted and cut again.
func TestAuditPruneByCountSkipsShortTrails(t *testing.T) {
	s := newTestStore(t)
	s.SetAuditPolicy(AuditPolicy{MaxEvents: 100, MaxAge: 30 * 24 * time.Hour})
	// Prunes are called here directly, as appends schedule them: the
	// background task may run them as well, to the same effect.
	prune := func() {
		t.Helper()
		s.audit.mu.Lock()
		p := s.audit.policy
		s.audit.mu.Unlock()
		_, err := s.pruneAudit("acme", p, now(), true)
		must(t, err)
	}
	bound := func() (int, bool) {
		s.audit.mu.Lock()
		defer s.audit.mu.Unlock()
		if ts := s.audit.sizes["acme"]; ts != nil {
			return ts.bound, ts.known
		}
		return 0, false
	}
	appendN := func(tag string, n int) {
		for i := range n {
			must(t, s.AppendAudit(&AuditEvent{OrgID: "acme", Action: fmt.Sprint(tag, i)}))
		}
	}
	appendN("a", 60)
	prune()
	// The bound may overstate by appends a prune counted twice (the
	// background task prunes too), never understate.
	if b, known := bound(); s.soleWriter && (!known || b < 60 || b >= 100) {
		t.Fatalf("after a count of 60 events: bound %d, known %v", b, known)
	}
	// An old event: the prune by age still runs where the count is
	// skipped, and the bound follows what it deleted.
	must(t, s.AppendAudit(&AuditEvent{OrgID: "acme", Action: "old", Time: time.Now().Add(-31 * 24 * time.Hour)}))
	prune()
	if b, known := bound(); s.soleWriter && (!known || b < 60 || b >= 100) {
		t.Fatalf("after an age prune: bound %d, known %v", b, known)
	}
	if ev, _ := s.ListAudit("acme", 1000); len(ev) != 60 {
		t.Fatalf("%d events after the age prune, want 60", len(ev))
	}
	appendN("b", 60)
	prune()
	ev, err := s.ListAudit("acme", 1000)
	must(t, err)
	if len(ev) != 100 || ev[0].Action != "b59" {
		t.Fatalf("%d events kept, newest %v; want 100, b59", len(ev), ev[0].Action)
	}
	if b, known := bound(); s.soleWriter && (!known || b < 100 || b > 110) {
		t.Fatalf("after a cut to 100: bound %d, known %v", b, known)
	}
	appendN("c", 5)
	prune()
	if ev, _ := s.ListAudit("acme", 1000); len(ev) != 100 || ev[0].Action != "c4" {
		t.Fatalf("%d events kept, newest %v; want 100, c4", len(ev), ev[0].Action)
	}

	// A write that reported failure may have committed its events all
	// the same: the trail's bound is forgotten, and the next prune by
	// count counts again rather than trust a bound that misses them.
	pruneBeta := func() {
		t.Helper()
		_, err := s.pruneAudit("beta", AuditPolicy{MaxEvents: 100, MaxAge: 30 * 24 * time.Hour}, now(), true)
		must(t, err)
	}
	for i := range 10 {
		must(t, s.AppendAudit(&AuditEvent{OrgID: "beta", Action: fmt.Sprint("d", i)}))
	}
	pruneBeta()
	var unreported []*AuditEvent
	for i := range 150 {
		unreported = append(unreported, &AuditEvent{ID: fmt.Sprint("u", i), OrgID: "beta", Action: fmt.Sprint("u", i), Time: now()})
	}
	must(t, s.update("test", func(txn Txn) error {
		for _, e := range unreported {
			if _, err := setJSON(txn, auditKey(e), e, 0); err != nil {
				return err
			}
		}
		return nil
	}))
	s.auditWriteFailed(unreported)
	pruneBeta()
	if ev, _ := s.ListAudit("beta", 1000); len(ev) != 100 {
		t.Fatalf("%d events kept after a failed write that committed, want 100", len(ev))
	}
}

// TestWriteAuditSplitsLargeBatches: a batch of events larger than one
// Badger transaction holds (a share of its memtable size) is written in
// smaller transactions, all of it.
func TestWriteAuditSplitsLargeBatches(t *testing.T) {
	s := newTestStore(t)
	var events []*AuditEvent
	for i := range 4000 {
		e, err := newAuditEvent("test", &AuditEvent{OrgID: "acme", Action: fmt.Sprint("a", i), Details: map[string]string{"x": strings.Repeat("d", 3000)}})
		must(t, err)
		events = append(events, e)
	}
	must(t, s.writeAudit("test", events))
	if n := len(rawKeys(t, s, "audit/acme/")); n != len(events) {
		t.Fatalf("%d events stored, want %d", n, len(events))
	}
}

// The prune's edges, on either backend: an event exactly max_age old
// stays and one a nanosecond older goes; by count, exactly the MaxEvents
// newest stay.
func TestAuditPruneEdges(t *testing.T) {
	s := newTestStore(t)
	// A policy no background prune acts on, while events go in.
	s.SetAuditPolicy(AuditPolicy{MaxEvents: 1000, MaxAge: 365 * 24 * time.Hour})
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	p := AuditPolicy{MaxEvents: 4, MaxAge: 24 * time.Hour}
	cutoff := at.Add(-p.MaxAge)
	for i, d := range []time.Duration{-time.Hour, -time.Nanosecond, 0, time.Nanosecond, time.Minute, time.Hour} {
		must(t, s.AppendAudit(&AuditEvent{OrgID: "acme", Action: fmt.Sprint("e", i), Time: cutoff.Add(d)}))
	}
	actions := func() string {
		t.Helper()
		ev, err := s.ListAudit("acme", 100)
		must(t, err)
		var a []string
		for _, e := range ev {
			a = append(a, e.Action)
		}
		return strings.Join(a, " ")
	}
	p.MaxEvents = 5
	n, err := s.pruneAudit("acme", p, at, false)
	must(t, err)
	if got := actions(); n != 2 || got != "e5 e4 e3 e2" {
		t.Errorf("by age: deleted %d, kept %q; want 2 deleted, e5 e4 e3 e2 kept", n, got)
	}
	p.MaxEvents = 3
	n, err = s.pruneAudit("acme", p, at, true)
	must(t, err)
	if got := actions(); n != 1 || got != "e5 e4 e3" {
		t.Errorf("by count: deleted %d, kept %q; want 1 deleted, e5 e4 e3 kept", n, got)
	}
	p.MaxEvents = 3
	n, err = s.pruneAudit("acme", p, at, true)
	must(t, err)
	if got := actions(); n != 0 || got != "e5 e4 e3" {
		t.Errorf("again: deleted %d, kept %q", n, got)
	}

	// Both cuts in one prune: whichever keeps fewer wins, on the
	// gateway-wide trail (empty org) and on an org's.
	for _, c := range []struct {
		org              string
		recent, old, max int
		want             int
	}{
		{"", 6, 2, 3, 3},       // the count cuts first
		{"globex", 2, 3, 4, 2}, // the age cuts first
	} {
		for i := range c.recent {
			must(t, s.AppendAudit(&AuditEvent{OrgID: c.org, Action: "recent", Time: cutoff.Add(time.Duration(i+1) * time.Minute)}))
		}
		for i := range c.old {
			must(t, s.AppendAudit(&AuditEvent{OrgID: c.org, Action: "old", Time: cutoff.Add(-time.Duration(i+1) * time.Minute)}))
		}
		// An event from before 1970 is old too.
		must(t, s.AppendAudit(&AuditEvent{OrgID: c.org, Action: "old", Time: time.Unix(-3600, 0)}))
		_, err := s.pruneAudit(c.org, AuditPolicy{MaxEvents: c.max, MaxAge: p.MaxAge}, at, true)
		must(t, err)
		ev, err := s.ListAudit(c.org, 100)
		must(t, err)
		if len(ev) != c.want {
			t.Errorf("org %q, %d recent and %d old events, max %d: kept %d, want %d", c.org, c.recent, c.old+1, c.max, len(ev), c.want)
		}
		for _, e := range ev {
			if e.Action != "recent" {
				t.Errorf("org %q: an old event kept", c.org)
			}
		}
	}
}
