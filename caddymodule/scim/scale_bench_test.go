package scim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// BenchmarkSCIMAtScale measures the SCIM operations an IdP's provisioning
// sync makes, with 100k users in the organization and 1k other
// organizations in the store (SPEC §8): the userName lookup before a
// create, the create, a read, a PATCH (deactivate, then reactivate) and
// a page of the user list. Each reports ops/s. Runs only with -bench: the
// setup writes 100k users (in batches) and 1k orgs.
func BenchmarkSCIMAtScale(b *testing.B) {
	e := quietEnv(b)
	const users, orgs = 100_000, 1_000
	ids := loadUserIDs(b, e.store, "acme", users)
	loadOrgs(b, e.store, orgs)
	tok := e.tokens["acme"]
	base := testPrefix + "/scim/acme/v2/Users"

	perSecond := func(b *testing.B, start time.Time, n int) {
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "ops/s")
	}
	b.Run("filter-userName", func(b *testing.B) {
		i, start := 0, time.Now()
		for b.Loop() {
			f := url.QueryEscape(fmt.Sprintf(`userName eq "USER%07d@acme.example"`, (i*7919)%users))
			if rec := serve(b, e.srv, tok, http.MethodGet, base+"?filter="+f, nil); rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			i++
		}
		perSecond(b, start, i)
	})
	b.Run("get", func(b *testing.B) {
		i, start := 0, time.Now()
		for b.Loop() {
			if rec := serve(b, e.srv, tok, http.MethodGet, base+"/"+ids[(i*7919)%users], nil); rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			i++
		}
		perSecond(b, start, i)
	})
	b.Run("create", func(b *testing.B) {
		i, start := 0, time.Now()
		for b.Loop() {
			body, _ := json.Marshal(oktaUser(fmt.Sprintf("new%07d@acme.example", i)))
			if rec := serve(b, e.srv, tok, http.MethodPost, base, body); rec.Code != http.StatusCreated {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			i++
		}
		perSecond(b, start, i)
	})
	b.Run("patch-active", func(b *testing.B) {
		i, start := 0, time.Now()
		for b.Loop() {
			// Alternate so that every PATCH changes something: a
			// deactivation also ends the user's sessions.
			body, _ := json.Marshal(patchOp(map[string]any{"op": "replace", "value": map[string]any{"active": (i/users)%2 == 1}}))
			if rec := serve(b, e.srv, tok, http.MethodPatch, base+"/"+ids[i%users], body); rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			i++
		}
		perSecond(b, start, i)
	})
	b.Run("list-page", func(b *testing.B) {
		i, start := 0, time.Now()
		for b.Loop() {
			// Deep pages too: the IdP's full sync reads them all.
			from := 1 + (i*7919)%(users-100)
			if rec := serve(b, e.srv, tok, http.MethodGet, base+"?count=100&startIndex="+strconv.Itoa(from), nil); rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			i++
		}
		perSecond(b, start, i)
	})
}

// loadUserIDs is loadUsers that also returns the new users' IDs.
func loadUserIDs(b *testing.B, st *store.Store, org string, n int) []string {
	start := time.Now()
	const batch = 1000
	ids := make([]string, 0, n)
	for from := 0; from < n; from += batch {
		var us []*store.User
		for i := from; i < min(from+batch, n); i++ {
			name := fmt.Sprintf("user%07d@acme.example", i)
			us = append(us, &store.User{OrgID: org, UserName: name, ExternalID: "ext-" + name, Active: true, Source: store.SourceSCIM,
				Emails: []store.Email{{Value: name, Type: "work", Primary: true}}, GivenName: "User", FamilyName: fmt.Sprint(i)})
		}
		if err := st.CreateUsers(us); err != nil {
			b.Fatal(err)
		}
		for _, u := range us {
			ids = append(ids, u.ID)
		}
	}
	b.Logf("loaded %d users in %v", n, time.Since(start).Round(time.Millisecond))
	return ids
}

// loadOrgs creates n more organizations, several at a time so that their
// synced commits share disk flushes.
func loadOrgs(b *testing.B, st *store.Store, n int) {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				id := "filler-" + strconv.Itoa(i)
				if err := st.CreateOrg(&store.Org{ID: id, Name: id, State: store.OrgActive}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.Logf("created %d orgs in %v", n, time.Since(start).Round(time.Millisecond))
}
