package store

import (
	"strings"
	"testing"
)

func TestSignInAttemptsBoundedNewestFirst(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "other")
	var refs []string
	for i := range MaxSignInAttempts + 5 {
		a := &SignInAttempt{OrgID: "acme", Outcome: "refused", Reason: "signature", Detail: strings.Repeat("x", 10_000)}
		if i == 0 {
			a.Outcome = "success"
		}
		must(t, s.AddSignInAttempt(a))
		if len(a.Ref) != RefLength || a.Time.IsZero() {
			t.Fatalf("attempt not assigned a ref and time: %+v", a)
		}
		refs = append(refs, a.Ref)
	}
	if n := len(rawKeys(t, s, "signin/acme/")); n != MaxSignInAttempts {
		t.Fatalf("%d stored attempts, want the newest %d", n, MaxSignInAttempts)
	}
	got, err := s.ListSignInAttempts("acme", "")
	must(t, err)
	if len(got) != MaxSignInAttempts || got[0].Ref != refs[len(refs)-1] || got[len(got)-1].Ref != refs[5] {
		t.Fatalf("list has %d, first %s last %s; want %d newest first", len(got), got[0].Ref, got[len(got)-1].Ref, MaxSignInAttempts)
	}
	if len(got[0].Detail) > maxAttemptText+len("…") {
		t.Fatalf("detail of %d bytes stored", len(got[0].Detail))
	}
	one, err := s.ListSignInAttempts("acme", refs[10])
	must(t, err)
	if len(one) != 1 || one[0].Ref != refs[10] {
		t.Fatalf("lookup by ref: %+v", one)
	}
	if old, _ := s.ListSignInAttempts("acme", refs[0]); len(old) != 0 {
		t.Fatal("the dropped oldest attempt is still found")
	}
	if other, _ := s.ListSignInAttempts("other", refs[10]); len(other) != 0 {
		t.Fatal("another org's attempt is found by its ref")
	}
	wantErr(t, s.AddSignInAttempt(&SignInAttempt{OrgID: "nope"}), ErrNotFound)

	must(t, s.DeleteOrg("acme"))
	if n := len(rawKeys(t, s, "signin/acme/")); n != 0 {
		t.Fatalf("%d attempts left after the org was deleted", n)
	}
}
