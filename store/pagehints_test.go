package store

import (
	"fmt"
	"slices"
	"testing"
)

// Paging through a list leaves hints that let the next page seek instead
// of skipping; after any create or delete a page must still be exactly
// the slice of the current list, never one computed from a stale hint.
func TestPageHintsNeverServeAStalePage(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "ab")
	for i := range 30 {
		mkUser(t, s, "ab", fmt.Sprint("user", i))
	}
	ids := func() []string {
		all, _, err := s.ListUsers("ab", 0, -1)
		must(t, err)
		var out []string
		for _, u := range all {
			out = append(out, u.ID)
		}
		return out
	}
	page := func(off, n int) []string {
		got, _, err := s.ListUsers("ab", off, n)
		must(t, err)
		var out []string
		for _, u := range got {
			out = append(out, u.ID)
		}
		return out
	}
	// check reads every page, last first, so that each page is read with
	// the hints the previous pass left, before this pass renews them; then
	// first to last.
	check := func(when string) {
		t.Helper()
		want := ids()
		var offs []int
		for off := 0; off < len(want); off += 7 {
			offs = append(offs, off)
		}
		rev := slices.Clone(offs)
		slices.Reverse(rev)
		for _, off := range append(rev, offs...) {
			if got := page(off, 7); !slices.Equal(got, want[off:min(off+7, len(want))]) {
				t.Fatalf("%s: page at %d = %v, want %v", when, off, got, want[off:min(off+7, len(want))])
			}
		}
	}

	check("first pass")
	if n := len(s.hints.m); n == 0 {
		t.Fatal("paging left no hints")
	}
	// The hint for offset 7 is used: it names the 8th key.
	if k := s.hints.get(scanPrefix(pUser, "ab"), 7, mustVersion(t, s, "ab")); k == nil || lastSegment(k) != ids()[7] {
		t.Fatalf("hint for offset 7: %q", k)
	}
	check("second pass, from hints")

	// A delete and a create move positions: old hints must not apply.
	all := ids()
	must(t, s.DeleteUser("ab", all[0]))
	check("after a delete")
	mkUser(t, s, "ab", "newcomer")
	check("after a create")
	// An update does not move keys, and pages stay right.
	_, err := s.UpdateUser("ab", ids()[10], func(u *User) error { u.DisplayName = "renamed"; return nil })
	must(t, err)
	check("after an update")
}

func mustVersion(t *testing.T, s *Store, org string) uint64 {
	t.Helper()
	var v uint64
	must(t, s.view(func(txn Txn) error {
		var err error
		_, v, err = counterVersion(txn, key(pCount, "users", org))
		return err
	}))
	return v
}

// BenchmarkListUsersPages reads one page of 100 at the middle of 50k
// users: as the next page of a client paging in order (a hint holds), and
// at an offset no page ended at (every earlier key is skipped).
func BenchmarkListUsersPages(b *testing.B) {
	s := newTestStore(b)
	mkOrg(b, s, "big")
	bulkLoadUsers(b, s, "big", 50_000, func(i int) string { return fmt.Sprintf("u%06d", i) })
	const mid = 25_000
	b.Run("next-page", func(b *testing.B) {
		if _, _, err := s.ListUsers("big", mid-100, 100); err != nil { // leaves the hint for mid
			b.Fatal(err)
		}
		for b.Loop() {
			if page, _, err := s.ListUsers("big", mid, 100); err != nil || len(page) != 100 {
				b.Fatal(len(page), err)
			}
		}
	})
	b.Run("cold-offset", func(b *testing.B) {
		for b.Loop() {
			if page, _, err := s.ListUsers("big", mid+1, 100); err != nil || len(page) != 100 {
				b.Fatal(len(page), err)
			}
		}
	})
}
