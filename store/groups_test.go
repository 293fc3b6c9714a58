package store

import (
	"slices"
	"testing"
)

func TestGroups(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "other")
	a := mkUser(t, s, "acme", "a")
	b := mkUser(t, s, "acme", "b")
	c := mkUser(t, s, "acme", "c")
	stranger := mkUser(t, s, "other", "x")

	wantErr(t, s.CreateGroup(&Group{OrgID: "acme"}), ErrInvalid)
	wantErr(t, s.CreateGroup(&Group{OrgID: "ghost", DisplayName: "G"}), ErrNotFound)
	// Members must be users of the same org.
	wantErr(t, s.CreateGroup(&Group{OrgID: "acme", DisplayName: "G", Members: []string{a.ID, stranger.ID}}), ErrNotFound)
	wantErr(t, s.CreateGroup(&Group{OrgID: "acme", DisplayName: "G", Members: []string{""}}), ErrInvalid)

	g := &Group{OrgID: "acme", DisplayName: "Admins", ExternalID: "gx", Members: []string{a.ID, b.ID, a.ID}}
	must(t, s.CreateGroup(g))
	if g.ID == "" || !slices.Equal(g.Members, []string{a.ID, b.ID}) {
		t.Fatalf("CreateGroup = %+v", g)
	}
	wantErr(t, s.CreateGroup(&Group{OrgID: "acme", DisplayName: "Other", ExternalID: "gx"}), ErrConflict)
	must(t, s.CreateGroup(&Group{OrgID: "other", DisplayName: "Admins", ExternalID: "gx"}))

	for name, get := range map[string]func() (*Group, error){
		"GetGroup":           func() (*Group, error) { return s.GetGroup("acme", g.ID) },
		"GroupByDisplayName": func() (*Group, error) { return s.GroupByDisplayName("acme", "aDmInS") },
		"GroupByExternalID":  func() (*Group, error) { return s.GroupByExternalID("acme", "gx") },
	} {
		got, err := get()
		if err != nil || got.ID != g.ID || len(got.Members) != 2 {
			t.Errorf("%s = %+v, %v", name, got, err)
		}
	}
	_, err := s.GetGroup("other", g.ID)
	wantErr(t, err, ErrNotFound)

	member := func(u *User) bool {
		ok, err := s.IsMember("acme", g.ID, u.ID)
		must(t, err)
		return ok
	}
	if !member(a) || !member(b) || member(c) {
		t.Fatal("IsMember wrong after create")
	}
	if ok, _ := s.IsMember("other", g.ID, a.ID); ok {
		t.Fatal("IsMember crosses orgs")
	}

	g2 := &Group{OrgID: "acme", DisplayName: "Devs", Members: []string{a.ID}}
	must(t, s.CreateGroup(g2))
	gs, err := s.GroupsOfUser("acme", a.ID)
	must(t, err)
	want := []string{g.ID, g2.ID}
	slices.Sort(want)
	if !slices.Equal(gs, want) {
		t.Fatalf("GroupsOfUser = %v, want %v", gs, want)
	}

	// Update: membership diff, rename, dedupe.
	up, err := s.UpdateGroup("acme", g.ID, func(g *Group) error {
		g.Members = []string{b.ID, c.ID, c.ID}
		g.DisplayName = "Administrators"
		g.ExternalID = ""
		return nil
	})
	must(t, err)
	if !slices.Equal(up.Members, []string{b.ID, c.ID}) {
		t.Fatalf("members = %v", up.Members)
	}
	if member(a) || !member(b) || !member(c) {
		t.Fatal("IsMember wrong after update")
	}
	_, err = s.GroupByDisplayName("acme", "admins")
	wantErr(t, err, ErrNotFound)
	_, err = s.GroupByExternalID("acme", "gx")
	wantErr(t, err, ErrNotFound)
	if _, err := s.GroupByDisplayName("acme", "ADMINISTRATORS"); err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateGroup("acme", g.ID, func(g *Group) error { g.Members = append(g.Members, stranger.ID); return nil })
	wantErr(t, err, ErrNotFound)
	_, err = s.UpdateGroup("acme", g.ID, func(g *Group) error { g.OrgID = "other"; return nil })
	wantErr(t, err, ErrInvalid)
	if got, _ := s.GetGroup("acme", g.ID); got.DisplayName != "Administrators" || len(got.Members) != 2 {
		t.Fatalf("failed updates changed the group: %+v", got)
	}

	groups, total, err := s.ListGroups("acme", 0, -1)
	must(t, err)
	if total != 2 || len(groups) != 2 || groups[0].ID > groups[1].ID {
		t.Fatalf("ListGroups = %d %v", total, groups)
	}
	page, total, _ := s.ListGroups("acme", 1, 5)
	if total != 2 || len(page) != 1 || page[0].ID != groups[1].ID {
		t.Fatalf("ListGroups page = %v", page)
	}

	must(t, s.DeleteGroup("acme", g.ID))
	wantErr(t, s.DeleteGroup("acme", g.ID), ErrNotFound)
	if member(b) || member(c) {
		t.Fatal("memberships survived DeleteGroup")
	}
	if keys := rawKeys(t, s, "gmem/acme/"+b.ID+"/"); len(keys) != 0 {
		t.Fatalf("leftover %v", keys)
	}
	_, err = s.GroupByDisplayName("acme", "administrators")
	wantErr(t, err, ErrNotFound)
	if _, total, _ := s.ListGroups("acme", 0, 0); total != 1 {
		t.Fatalf("group count = %d", total)
	}
	must(t, s.CreateGroup(&Group{OrgID: "acme", DisplayName: "Administrators"}))
}

// Group names may be shared (directories have such groups); a look-up by
// a shared name finds none of them and says why.
func TestGroupsSharingAName(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	g1 := &Group{OrgID: "acme", DisplayName: "Admins"}
	must(t, s.CreateGroup(g1))
	if id, err := s.GroupIDByDisplayName("acme", "admins"); err != nil || id != g1.ID {
		t.Fatalf("one group: %q %v", id, err)
	}
	g2 := &Group{OrgID: "acme", DisplayName: "ADMINS"}
	must(t, s.CreateGroup(g2))
	_, err := s.GroupIDByDisplayName("acme", "Admins")
	wantErr(t, err, ErrAmbiguous)
	_, err = s.GroupByDisplayName("acme", "Admins")
	wantErr(t, err, ErrAmbiguous)
	ids, err := s.GroupIDsByDisplayName("acme", "aDmIns", 0)
	must(t, err)
	want := []string{g1.ID, g2.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("GroupIDsByDisplayName = %v, want %v", ids, want)
	}
	// Renaming one away (or deleting it) makes the name unambiguous again.
	_, err = s.UpdateGroup("acme", g2.ID, func(g *Group) error { g.DisplayName = "Devs"; return nil })
	must(t, err)
	if id, err := s.GroupIDByDisplayName("acme", "Admins"); err != nil || id != g1.ID {
		t.Fatalf("after rename: %q %v", id, err)
	}
	_, err = s.UpdateGroup("acme", g2.ID, func(g *Group) error { g.DisplayName = "admins"; return nil })
	must(t, err)
	must(t, s.DeleteGroup("acme", g1.ID))
	if id, err := s.GroupIDByDisplayName("acme", "Admins"); err != nil || id != g2.ID {
		t.Fatalf("after delete: %q %v", id, err)
	}
	if keys := rawKeys(t, s, pGName+"/acme/"); len(keys) != 1 {
		t.Fatalf("name index keys: %q", keys)
	}
}
