package store

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scaleFixture is a store loaded for the scale benchmarks: users in one
// org ("acme", as SPEC §8 asks for 100k users per org), as many sessions
// as users, and orgs other organizations each holding a verified domain.
type scaleFixture struct {
	s        *Store
	users    []string // user IDs of acme, in load order
	sessions []string
	domains  []string
}

func scaleUserName(i int) string { return fmt.Sprintf("User%07d@acme.example", i) }

// loadScale fills a fresh store. Users and sessions go in through Badger
// write batches (the same keys CreateUser and CreateSession write; see
// bulkLoadUsers), and so do orgs and their domains: one synced commit per
// record would make the 100k setup take minutes.
func loadScale(b *testing.B, users, orgs int) *scaleFixture {
	b.Helper()
	start := time.Now()
	s := newTestStore(b)
	f := &scaleFixture{s: s}
	must(b, s.CreateOrg(&Org{ID: "acme", Name: "Acme", State: OrgActive}))
	bulkLoadUsers(b, s, "acme", users, scaleUserName)
	// Users are read back by name to learn their generated IDs.
	err := s.view(func(txn Txn) error {
		for _, k := range keysWithPrefix(txn, scanPrefix(pUser, "acme"), nil, 0) {
			f.users = append(f.users, lastSegment(k))
		}
		return nil
	})
	must(b, err)

	wb := newBulk(b, s)
	expires := time.Now().Add(8 * time.Hour).UTC().Round(0)
	ttl := time.Until(expires)
	set := func(k []byte, v any) {
		val, err := jsonMarshal(v)
		must(b, err)
		must(b, wb.SetExpiring(k, val, ttlSeconds(time.Now().Add(ttl))))
	}
	created := now()
	for i, uid := range f.users {
		id := fmt.Sprintf("%064x", i) // the shape of a real session record ID
		set(key(pSess, id), &Session{ID: id, OrgID: "acme", UserID: uid, AuthMethod: "saml",
			Groups: []string{"admins", "staff"}, NameID: uid, Created: created, LastSeen: created, ExpiresAt: expires})
		set(key(pSessOrg, "acme", id), sessRef{uid, "saml"})
		set(key(pSessUser, "acme", uid, id), true)
		f.sessions = append(f.sessions, id)
	}
	// Organizations with a verified domain each: the keys CreateOrg and
	// AddDomain write (the benchmarks read them back through the API).
	for i := range orgs {
		id := "org-" + strconv.Itoa(i)
		d := id + ".example"
		val := func(v any) []byte {
			out, err := jsonMarshal(v)
			must(b, err)
			return out
		}
		must(b, wb.Set(key(pOrg, id), val(&Org{ID: id, Name: "Org " + id, State: OrgActive, Created: created, Updated: created})))
		must(b, wb.Set(key(pOrgLive, id), val(true)))
		must(b, wb.Set(key(pDom, id, d), val(&Domain{OrgID: id, Name: d, Status: DomainVerified, Created: created, VerifiedAt: created})))
		must(b, wb.Set(key(pVDom, d), val(id)))
		f.domains = append(f.domains, d)
	}
	must(b, wb.Flush())
	if got, err := s.OrgForDomain(f.domains[len(f.domains)-1]); err != nil || got != "org-"+strconv.Itoa(orgs-1) {
		b.Fatalf("bulk-loaded domain: %q, %v", got, err)
	}
	b.Logf("loaded %d users, %d sessions, %d orgs in %v", users, len(f.sessions), orgs, time.Since(start).Round(time.Millisecond))
	return f
}

// BenchmarkLookupScale is the cost of the lookups the gateway and SCIM
// make per request, with 1k, 10k and 100k users (and sessions) in one org
// and 10, 100 and 1k organizations with a verified domain each. Every
// lookup is an index or primary-key read, so the cost must stay flat as
// the counts grow. Runs only with -bench (loading 100k users takes a few
// seconds).
func BenchmarkLookupScale(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		f := loadScale(b, n, max(10, n/100))
		s := f.s
		b.Run(fmt.Sprintf("users=%d/GetSession", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.GetSession(f.sessions[(i*7919)%n]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("users=%d/GetUser", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.GetUser("acme", f.users[(i*7919)%n]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("users=%d/UserByUserName", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// In another case than stored, as IdPs send it.
				if _, err := s.UserByUserName("acme", strings.ToLower(scaleUserName((i*7919)%n))); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("users=%d/OrgForDomain", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.OrgForDomain(f.domains[(i*7919)%len(f.domains)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("users=%d/GetOrg", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.GetOrg("org-" + strconv.Itoa((i*7919)%len(f.domains))); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkLoadedStoreMemory reports the memory of a store holding 100k
// users (and 100k sessions) in one org plus 1k organizations with a
// verified domain each: the Go heap in use after a GC and the process RSS
// (/proc/self/status), before and after loading. The loop only reads one
// session, so that the store stays in use while it is measured.
func BenchmarkLoadedStoreMemory(b *testing.B) {
	heap0, rss0 := memNow()
	f := loadScale(b, 100_000, 1_000)
	heap1, rss1 := memNow()
	for b.Loop() {
		if _, err := f.s.GetSession(f.sessions[0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(heap1)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(heap1-min(heap0, heap1))/(1<<20), "heap-growth-MiB")
	b.ReportMetric(float64(rss1)/(1<<20), "rss-MiB")
	b.ReportMetric(float64(rss1-min(rss0, rss1))/(1<<20), "rss-growth-MiB")
}

// memNow returns the Go heap in use after a full GC and the process RSS,
// in bytes (RSS 0 where /proc is missing).
func memNow() (heap, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, procRSS()
}

func procRSS() uint64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
