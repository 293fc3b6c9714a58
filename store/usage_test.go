package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store/pgtest"
)

// rawUsage adds up, straight from Badger, len(key)+len(value) of every key
// under the organization's user and group prefixes. The prefixes are
// spelled out here rather than taken from scanUsage, so that a prefix
// the store forgets to count shows up as a difference.
func rawUsage(t testing.TB, s *Store, org string) int64 {
	t.Helper()
	var total int64
	err := s.view(func(txn Txn) error {
		for _, p := range []string{"user", "uname", "uext", "umail", "grp", "gname", "gext", "gmem", "udel"} {
			p := []byte(p + "/" + esc(org) + "/")
			it := txn.Iterator(IterOptions{Prefix: p})
			for it.Seek(p); it.Valid(); it.Next() {
				v, err := it.Value()
				if err != nil {
					it.Close()
					return err
				}
				total += int64(len(it.Key()) + len(v))
			}
			it.Close()
		}
		return nil
	})
	must(t, err)
	return total
}

func checkUsage(t testing.TB, s *Store, orgs ...string) {
	t.Helper()
	for _, org := range orgs {
		got, err := s.StoredBytes(org)
		must(t, err)
		if want := rawUsage(t, s, org); got != want {
			t.Fatalf("org %s: StoredBytes = %d, the stored keys hold %d", org, got, want)
		}
	}
}

// dropUsageCounters turns the org's data into what a store written before
// the byte counters holds: the same records, no counters.
func dropUsageCounters(t testing.TB, s *Store, org string) {
	t.Helper()
	must(t, rawUpdate(s, func(txn Txn) error {
		for _, k := range keysWithPrefix(txn, scanPrefix(pCount, "bytes", org), nil, 0) {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return txn.Delete(usageMarker(org))
	}))
}

// usageWorkload runs random writes of users and groups of one org: every
// kind of writer of those records, with values of random size, and some
// writes that fail (duplicates, unknown members).
type usageWorkload struct {
	s   *Store
	org string

	mu     sync.Mutex
	users  []string
	locals []string
	groups []string
	n      int
}

func (w *usageWorkload) pick(rng *rand.Rand, from *[]string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(*from) == 0 {
		return "", false
	}
	return (*from)[rng.IntN(len(*from))], true
}

func (w *usageWorkload) forget(from *[]string, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, x := range *from {
		if x == id {
			*from = append((*from)[:i], (*from)[i+1:]...)
			return
		}
	}
}

func (w *usageWorkload) remember(from *[]string, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	*from = append(*from, id)
}

func (w *usageWorkload) next() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	return w.n
}

func randomUser(rng *rand.Rand, org string, n int) *User {
	// A few names repeat on purpose, so that some creations conflict.
	name := fmt.Sprintf("u%d@%s.test", n%97, org)
	u := &User{OrgID: org, UserName: name, Active: true, Source: SourceSCIM}
	for i := range rng.IntN(4) {
		u.Emails = append(u.Emails, Email{Value: fmt.Sprintf("m%d-%d@%s.test", n, i, org), Type: "work"})
	}
	if rng.IntN(2) == 0 {
		u.ExternalID = fmt.Sprintf("ext-%d", n)
	}
	if rng.IntN(2) == 0 {
		u.SCIM = map[string]any{"title": strings.Repeat("t", rng.IntN(3000))}
	}
	return u
}

func (w *usageWorkload) step(t testing.TB, rng *rand.Rand) {
	s, org := w.s, w.org
	ok := func(err error, allowed ...error) {
		if err == nil {
			return
		}
		for _, a := range allowed {
			if errors.Is(err, a) {
				return
			}
		}
		t.Errorf("unexpected error: %v", err)
	}
	switch rng.IntN(12) {
	case 0, 1:
		u := randomUser(rng, org, w.next())
		err := s.CreateUser(u)
		ok(err, ErrConflict)
		if err == nil {
			w.remember(&w.users, u.ID)
		}
	case 2:
		u := randomUser(rng, org, w.next())
		err := s.ProvisionUser(u)
		ok(err, ErrConflict)
		if err == nil {
			w.remember(&w.users, u.ID)
		}
	case 3, 4:
		id, found := w.pick(rng, &w.users)
		if !found {
			return
		}
		n := w.next()
		_, err := s.UpdateUser(org, id, func(u *User) error {
			u.Emails = randomUser(rng, org, n).Emails
			u.DisplayName = strings.Repeat("d", rng.IntN(200))
			if rng.IntN(3) == 0 {
				u.ExternalID = ""
			}
			u.SCIM = map[string]any{"title": strings.Repeat("x", rng.IntN(5000))}
			return nil
		})
		ok(err, ErrNotFound, ErrConflict)
	case 5:
		id, found := w.pick(rng, &w.users)
		if !found {
			return
		}
		var err error
		if rng.IntN(2) == 0 {
			err = s.DeprovisionUser(org, id)
		} else {
			err = s.DeleteUser(org, id)
		}
		ok(err, ErrNotFound)
		w.forget(&w.users, id)
	case 6:
		g := &Group{OrgID: org, DisplayName: fmt.Sprintf("g%d", w.next()%31)}
		for range rng.IntN(8) {
			if id, found := w.pick(rng, &w.users); found {
				g.Members = append(g.Members, id)
			}
		}
		err := s.CreateGroup(g)
		ok(err, ErrConflict, ErrNotFound)
		if err == nil {
			w.remember(&w.groups, g.ID)
		}
	case 7, 8:
		gid, found := w.pick(rng, &w.groups)
		if !found {
			return
		}
		var add []string
		for range rng.IntN(6) {
			if id, found := w.pick(rng, &w.users); found {
				add = append(add, id)
			}
		}
		if rng.IntN(4) == 0 {
			add = append(add, "no-such-user") // the update fails
		}
		_, err := s.UpdateGroup(org, gid, func(g *Group) error {
			if len(g.Members) > 0 && rng.IntN(2) == 0 {
				g.Members = g.Members[rng.IntN(len(g.Members)):]
			}
			g.Members = append(g.Members, add...)
			if rng.IntN(3) == 0 {
				g.ExternalID = fmt.Sprintf("gx-%d", rng.IntN(50))
			}
			return nil
		})
		ok(err, ErrNotFound, ErrConflict)
	case 9:
		gid, found := w.pick(rng, &w.groups)
		if !found {
			return
		}
		ok(s.DeleteGroup(org, gid), ErrNotFound)
		w.forget(&w.groups, gid)
	case 10:
		n := w.next()
		addr := fmt.Sprintf("local%d@%s.test", n, org)
		u := &User{OrgID: org, UserName: addr, Emails: []Email{{Value: addr}}, Source: SourceLocal, Role: RoleUser, Active: true}
		err := s.CreateLocalUser(u, testInvitation(n))
		ok(err)
		if err == nil {
			w.remember(&w.locals, u.ID)
			w.remember(&w.users, u.ID)
		}
	case 11:
		id, found := w.pick(rng, &w.locals)
		if !found {
			return
		}
		switch rng.IntN(3) {
		case 0:
			_, err := s.DeleteLocalUser(org, id)
			ok(err, ErrNotFound, ErrInvalid)
			w.forget(&w.locals, id)
			w.forget(&w.users, id)
		default:
			inv := testInvitation(w.next())
			inv.OrgID, inv.UserID = org, id
			err := s.IssueInvitation(inv)
			ok(err, ErrNotFound, ErrInvalid)
			if err == nil {
				_, _, err = s.RedeemInvitation(inv.TokenHash, "$argon2id$"+strings.Repeat("h", rng.IntN(100)))
				ok(err, ErrNotFound)
			}
		}
	}
}

func testInvitation(n int) *Invitation {
	sum := sha256.Sum256(fmt.Appendf(nil, "token %d %d", n, time.Now().UnixNano()))
	return &Invitation{TokenHash: hex.EncodeToString(sum[:]), Purpose: InviteUser, ExpiresAt: time.Now().Add(time.Hour)}
}

// TestStoredBytesMatchStoredKeys: after random writes of every kind, in
// sequence and concurrently, each organization's StoredBytes equals the
// bytes its user and group keys hold.
func TestStoredBytesMatchStoredKeys(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "globex")
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	acme := &usageWorkload{s: s, org: "acme"}
	globex := &usageWorkload{s: s, org: "globex"}
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	for i := range 300 {
		w := acme
		if i%3 == 0 {
			w = globex
		}
		w.step(t, rng)
		if i%50 == 0 {
			checkUsage(t, s, "acme", "globex")
		}
	}
	checkUsage(t, s, "acme", "globex")
	if n, _ := s.StoredBytes("acme"); n == 0 {
		t.Fatal("nothing counted")
	}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(g+2)))
			for range 60 {
				if g%4 == 0 {
					globex.step(t, rng)
				} else {
					acme.step(t, rng)
				}
			}
		}()
	}
	wg.Wait()
	checkUsage(t, s, "acme", "globex")
	// Deleting everything brings the count back to what is left: nothing.
	for _, id := range acme.users {
		_ = s.DeleteUser("acme", id)
	}
	for _, id := range acme.groups {
		_ = s.DeleteGroup("acme", id)
	}
	for _, id := range acme.locals {
		_, _ = s.DeleteLocalUser("acme", id)
	}
	checkUsage(t, s, "acme")
}

// TestStoredBytesOfAnOldStore: a store written before the counters has
// records and no counters. The first need computes them, once, also when
// it races with writes that were the first to need them.
func TestStoredBytesOfAnOldStore(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "globex")
	w := &usageWorkload{s: s, org: "acme"}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 200 {
		w.step(t, rng)
	}
	// Users written as an old store holds them, without any counter.
	bulkLoadUsers(t, s, "acme", 500, func(i int) string { return fmt.Sprintf("bulk%d", i) })
	dropUsageCounters(t, s, "acme")
	if keys := rawKeys(t, s, "count/bytes"); len(keys) != 0 {
		t.Fatalf("counters left: %v", keys)
	}
	want := rawUsage(t, s, "acme")
	if want == 0 {
		t.Fatal("no data")
	}

	got, err := s.StoredBytes("acme")
	must(t, err)
	if got != want {
		t.Fatalf("computed %d, the stored keys hold %d", got, want)
	}
	if again, _ := s.StoredBytes("acme"); again != got {
		t.Fatalf("second call: %d, first %d", again, got)
	}

	// Again from scratch, with writers and readers racing to compute.
	dropUsageCounters(t, s, "acme")
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(9, uint64(g)))
			for range 15 {
				if g%3 == 0 {
					if _, err := s.StoredBytes("acme"); err != nil {
						t.Error(err)
					}
					continue
				}
				w.step(t, rng)
			}
		}()
	}
	wg.Wait()
	checkUsage(t, s, "acme")
	if n, _ := s.StoredBytes("globex"); n != 0 {
		t.Fatalf("empty org: %d", n)
	}
}

// TestMaxStoredBytes: a growing write past the cap fails with ErrQuota
// and writes nothing; shrinking writes and deletions go through even over
// the cap.
func TestMaxStoredBytes(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "globex")
	capped := MaxStoredBytes(20_000)
	big := map[string]any{"title": strings.Repeat("t", 3000)}
	var ids []string
	for i := 0; ; i++ {
		u := &User{OrgID: "acme", UserName: fmt.Sprintf("u%d@acme.test", i), Active: true, Source: SourceSCIM, SCIM: big}
		before := rawUsage(t, s, "acme")
		err := s.ProvisionUser(u, capped)
		if errors.Is(err, ErrQuota) {
			if got := rawUsage(t, s, "acme"); got != before {
				t.Fatalf("refused, but %d bytes became %d", before, got)
			}
			if _, err := s.UserByUserName("acme", u.UserName); !errors.Is(err, ErrNotFound) {
				t.Fatalf("refused user stored: %v", err)
			}
			if n, _ := s.CountUsers("acme"); n != len(ids) {
				t.Fatalf("%d users counted, %d created", n, len(ids))
			}
			break
		}
		must(t, err)
		ids = append(ids, u.ID)
		if i > 20 {
			t.Fatal("the cap never applied")
		}
	}
	if len(ids) < 3 {
		t.Fatalf("only %d users fit", len(ids))
	}
	used, _ := s.StoredBytes("acme")
	if used > 20_000 {
		t.Fatalf("%d bytes stored", used)
	}
	// Another org's budget is its own; no cap given, no cap applied.
	must(t, s.CreateUser(&User{OrgID: "globex", UserName: "g@globex.test", SCIM: big}, capped))
	must(t, s.CreateUser(&User{OrgID: "acme", UserName: "uncapped@acme.test", SCIM: big}))

	// acme is over the cap now: growing fails, shrinking and deleting work.
	grow := func(u *User) error { u.DisplayName = strings.Repeat("g", 500); return nil }
	_, err := s.UpdateUser("acme", ids[0], grow, capped)
	wantErr(t, err, ErrQuota)
	g := &Group{OrgID: "acme", DisplayName: "G", Members: ids}
	wantErr(t, s.CreateGroup(g, capped), ErrQuota)
	_, err = s.UpdateUser("acme", ids[0], func(u *User) error { u.SCIM = nil; return nil }, capped)
	must(t, err)
	must(t, s.DeleteUser("acme", ids[1]))
	must(t, s.DeprovisionUser("acme", ids[2]))
	checkUsage(t, s, "acme", "globex")

	// Room again: a group fits, and growing it past the cap fails.
	for _, id := range ids[3:] {
		must(t, s.DeleteUser("acme", id))
	}
	g = &Group{OrgID: "acme", DisplayName: "G", Members: ids[:1]}
	must(t, s.CreateGroup(g, MaxStoredBytes(40_000)))
	// An externalId within the key length: it is stored twice (the
	// record and its index), past a cap 3,000 bytes above what is used.
	now, err := s.StoredBytes("acme")
	must(t, err)
	_, err = s.UpdateGroup("acme", g.ID, func(g *Group) error {
		g.ExternalID = strings.Repeat("x", 2_000)
		return nil
	}, MaxStoredBytes(now+3_000))
	wantErr(t, err, ErrQuota)
	if got, _ := s.GetGroup("acme", g.ID); got.ExternalID != "" {
		t.Fatal("refused group update stored")
	}
	checkUsage(t, s, "acme")
}

// TestDeleteOrgClearsStoredBytes: the counters go with the organization,
// and one created again with its ID starts from zero.
func TestDeleteOrgClearsStoredBytes(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "globex")
	mkUser(t, s, "acme", "a@acme.test", "a@acme.test")
	mkUser(t, s, "globex", "b@globex.test")
	if n, _ := s.StoredBytes("acme"); n == 0 {
		t.Fatal("nothing counted")
	}
	must(t, s.DeleteOrg("acme"))
	for _, p := range []string{"count/bytes/acme/", "count/bytesok/acme"} {
		if keys := rawKeys(t, s, p); len(keys) != 0 {
			t.Fatalf("left behind: %v", keys)
		}
	}
	mkOrg(t, s, "acme")
	if n, _ := s.StoredBytes("acme"); n != 0 {
		t.Fatalf("recreated org starts at %d", n)
	}
	mkUser(t, s, "acme", "c@acme.test")
	checkUsage(t, s, "acme", "globex")
}

// BenchmarkStoredBytesFirstScan: the one-time scan that computes the
// counters of an organization of 100k users in a store from before them
// (bulkLoadUsers writes no byte counters), followed by a write that
// reads them. Run with -benchtime=1x.
func BenchmarkStoredBytesFirstScan(b *testing.B) {
	s := newTestStore(b)
	must(b, s.CreateOrg(&Org{ID: "acme", Name: "Acme"}))
	bulkLoadUsers(b, s, "acme", 100_000, func(i int) string { return fmt.Sprintf("user%07d@acme.test", i) })
	for b.Loop() {
		b.StopTimer()
		dropUsageCounters(b, s, "acme")
		b.StartTimer()
		n, err := s.StoredBytes("acme")
		must(b, err)
		b.ReportMetric(float64(n)/(1<<20), "MiB")
		mkUser(b, s, "acme", fmt.Sprintf("new%d@acme.test", time.Now().UnixNano()))
	}
}

// A capped write on PostgreSQL reads the stored-bytes total without a
// second pooled connection: with a pool of one connection, capped writes
// from several goroutines all go through (a nested read transaction
// would wait forever for the connection its own writer holds).
func TestCappedWritesNeedOneConnection(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	b := openPostgresWith(t, PostgresOptions{DSN: dsn, Schema: schema, MaxConns: 1})
	s, err := OpenBackend(b, Options{GCInterval: -1})
	must(t, err)
	defer s.Close()
	mkOrg(t, s, "acme")
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			var err error
			for i := range 3 {
				u := &User{OrgID: "acme", UserName: fmt.Sprintf("g%d-u%d@acme.test", g, i), Active: true, Source: SourceSCIM}
				if err = s.ProvisionUser(u, MaxStoredBytes(1<<20)); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 4 {
		select {
		case err := <-done:
			must(t, err)
		case <-time.After(45 * time.Second):
			t.Fatal("capped writes on a one-connection pool are stuck")
		}
	}
	if n, _ := s.CountUsers("acme"); n != 12 {
		t.Fatalf("%d users, want 12", n)
	}
}

// TestCapCheckTotalIsExact: the total a cap check compares with (on
// Badger partly remembered from earlier checks, see stripeCache) is what
// the stored keys hold once writes are done: after creations, growth,
// deletions, group changes, writes of several goroutines at once and the
// deletion and re-creation of an organization.
func TestCapCheckTotalIsExact(t *testing.T) {
	s := newTestStore(t)
	orgs := []string{"acme", "globex"}
	for _, org := range orgs {
		mkOrg(t, s, org)
	}
	check := func() {
		t.Helper()
		for _, org := range orgs {
			var got int64
			must(t, s.view(func(txn Txn) error {
				var err error
				got, err = s.committedUsage(txn, org)
				return err
			}))
			if want := rawUsage(t, s, org); got != want {
				t.Fatalf("org %s: the cap check's total is %d, the stored keys hold %d", org, got, want)
			}
		}
	}
	capped := MaxStoredBytes(1 << 30)
	check()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Go(func() {
			org := orgs[w%2]
			var mine []string
			for i := range 40 {
				u := &User{OrgID: org, UserName: fmt.Sprintf("w%d-%d@%s.test", w, i, org), Active: true, Source: SourceSCIM}
				if err := s.ProvisionUser(u, capped); err != nil {
					errs <- err
					return
				}
				mine = append(mine, u.ID)
				switch i % 4 {
				case 1:
					_, err := s.UpdateUser(org, u.ID, func(u *User) error { u.DisplayName = strings.Repeat("d", i*10); return nil }, capped)
					if err != nil {
						errs <- err
						return
					}
				case 2:
					if err := s.DeleteUser(org, mine[0]); err != nil {
						errs <- err
						return
					}
					mine = mine[1:]
				case 3:
					if err := s.CreateGroup(&Group{OrgID: org, DisplayName: fmt.Sprintf("g%d-%d", w, i), Members: mine}, capped); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	// Checks while the writers run must not disturb them or the result.
	for range 20 {
		for _, org := range orgs {
			must(t, s.view(func(txn Txn) error {
				_, err := s.committedUsage(txn, org)
				return err
			}))
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check()
	must(t, s.DeleteOrg("globex"))
	mkOrg(t, s, "globex")
	check()
	mkUser(t, s, "globex", "again@globex.test")
	must(t, s.ProvisionUser(&User{OrgID: "globex", UserName: "capped@globex.test", Active: true, Source: SourceSCIM}, capped))
	check()
	checkUsage(t, s, orgs...)
}
