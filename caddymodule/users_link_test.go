package caddymodule

import (
	"errors"
	"testing"

	"github.com/ssogate/ssogate/caddymodule/samlsp"
	"github.com/ssogate/ssogate/store"
)

// The linking rule of findUser, on a real store: the address alone never
// reaches a user held to a stable ID, nor one of several users sharing
// it, nor the user of a look-alike address.
func TestFindUserLinksOnlyByTheRule(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	org := &store.Org{ID: "acme", Name: "Acme"}
	if err := st.CreateOrg(org); err != nil {
		t.Fatal(err)
	}
	mk := func(u *store.User) *store.User {
		t.Helper()
		u.OrgID, u.Active = org.ID, true
		if err := st.CreateUser(u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	linked := mk(&store.User{UserName: "kim@acme.test", ExternalID: "oid-kim", Source: store.SourceSAML,
		Emails: []store.Email{{Value: "kim@acme.test"}}})
	scim := mk(&store.User{UserName: "lee@acme.test", ExternalID: "mailNickname-lee", Source: store.SourceSCIM,
		Emails: []store.Email{{Value: "lee@acme.test"}}})
	for _, n := range []string{"team-a", "team-b"} {
		mk(&store.User{UserName: n, Source: store.SourceSCIM, Emails: []store.Email{{Value: "team@acme.test"}}})
	}

	for _, c := range []struct {
		name     string
		id       samlsp.Identity
		want     *store.User
		mismatch bool
	}{
		{"stable ID", samlsp.Identity{Email: "other@acme.test", ObjectID: "oid-kim"}, linked, false},
		{"address and the same stable ID", samlsp.Identity{Email: "KIM@acme.test", ObjectID: "oid-kim"}, linked, false},
		{"address and another stable ID", samlsp.Identity{Email: "kim@acme.test", ObjectID: "oid-mallory"}, nil, true},
		{"address and no stable ID", samlsp.Identity{Email: "kim@acme.test"}, nil, true},
		{"look-alike address", samlsp.Identity{Email: "\u212Aim@acme.test", ObjectID: "oid-mallory"}, nil, false},
		{"SCIM user by address", samlsp.Identity{Email: "Lee@acme.test", ObjectID: "oid-lee"}, scim, false},
		{"address on two users", samlsp.Identity{Email: "team@acme.test", ObjectID: "oid-team"}, nil, true},
		{"nobody", samlsp.Identity{Email: "new@acme.test", ObjectID: "oid-new"}, nil, false},
	} {
		u, err := findUser(st, org, &c.id)
		switch {
		case c.mismatch:
			if !errors.Is(err, errIdentityMismatch) {
				t.Errorf("%s: got %v, %v; want a refusal", c.name, u, err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want == nil && u != nil:
			t.Errorf("%s: linked to %s, want nobody", c.name, u.UserName)
		case c.want != nil && (u == nil || u.ID != c.want.ID):
			t.Errorf("%s: got %v, want %s", c.name, u, c.want.UserName)
		}
	}
}

// authorized decides at sign-in and again on every request. A look-alike
// of the admin group's name is another group, whether asserted or
// provisioned by SCIM (an index keyed by strings.ToLower resolved the
// mapping "kubernetes-admins" to a SCIM group spelled with U+212A KELVIN
// SIGN, and its members passed on every request).
func TestAuthorizedIgnoresLookAlikeGroups(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	org := &store.Org{ID: "acme", Name: "Acme", AdminGroup: store.GroupMapping{Name: "kubernetes-admins"}}
	if err := st.CreateOrg(org); err != nil {
		t.Fatal(err)
	}
	u := &store.User{OrgID: org.ID, UserName: "eve@acme.test", Active: true, Source: store.SourceSCIM}
	if err := st.CreateUser(u); err != nil {
		t.Fatal(err)
	}
	for _, asserted := range []string{"\u212Aubernetes-admins", "kubernete\u017F-admins"} {
		if ok, err := authorized(st, org, u, []string{asserted}); err != nil || ok {
			t.Errorf("asserted %q: authorized = %v, %v", asserted, ok, err)
		}
	}
	if ok, err := authorized(st, org, u, []string{"KUBERNETES-admins"}); err != nil || !ok {
		t.Errorf("ASCII case of the admin group: authorized = %v, %v", ok, err)
	}
	if err := st.CreateGroup(&store.Group{OrgID: org.ID, DisplayName: "\u212Aubernetes-admins", Members: []string{u.ID}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := authorized(st, org, u, nil); err != nil || ok {
		t.Errorf("member of a provisioned look-alike group: authorized = %v, %v", ok, err)
	}
}
