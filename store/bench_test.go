package store

import (
	"fmt"
	"testing"
	"time"
)

func BenchmarkGetSession(b *testing.B) {
	s := newTestStore(b)
	mkOrg(b, s, "acme")
	u := mkUser(b, s, "acme", "alice")
	const n = 1000
	for i := range n {
		must(b, s.CreateSession(&Session{ID: fmt.Sprintf("sess-%d", i), OrgID: "acme", UserID: u.ID, AuthMethod: "saml", Groups: []string{"admins", "devs"}, ExpiresAt: time.Now().Add(time.Hour)}))
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := s.GetSession(fmt.Sprintf("sess-%d", i%n)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkTouchSession(b *testing.B) {
	s := newTestStore(b)
	mkOrg(b, s, "acme")
	u := mkUser(b, s, "acme", "alice")
	must(b, s.CreateSession(&Session{ID: "s", OrgID: "acme", UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}))
	b.ReportAllocs()
	for b.Loop() {
		must(b, s.TouchSession("s", time.Now()))
	}
}

func BenchmarkUserByUserName(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			s := newTestStore(b)
			mkOrg(b, s, "acme")
			name := func(i int) string { return fmt.Sprintf("User%07d@acme.example", i) }
			bulkLoadUsers(b, s, "acme", n, name)
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				// Looked up in another case than stored, as IdPs do.
				if _, err := s.UserByUserName("acme", fmt.Sprintf("user%07d@ACME.example", (i*7919)%n)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkCreateUser(b *testing.B) {
	s := newTestStore(b)
	mkOrg(b, s, "acme")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		must(b, s.CreateUser(&User{OrgID: "acme", UserName: fmt.Sprint("u", i), Emails: []Email{{Value: fmt.Sprint("u", i, "@acme.example")}}}))
		i++
	}
}
