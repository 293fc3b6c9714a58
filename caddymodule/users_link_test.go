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
