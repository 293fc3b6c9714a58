package scim

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// A look-alike address (U+212A KELVIN SIGN folds onto k under Unicode
// folding) is another user: creating it is no uniqueness conflict, and
// no filter an IdP's provisioning client looks users up with finds one
// for the other.
func TestUserIdentityLookAlikesAreDistinct(t *testing.T) {
	e := newEnv(t)
	const kim, kelvinKim = "kim@acme.com", "\u212Aim@acme.com"
	mail := func(v string) map[string]any {
		return map[string]any{"emails": []any{map[string]any{"value": v, "type": "work", "primary": true}}}
	}
	kimID := e.createUser("acme", kim, mail(kim))
	kelvinID := e.createUser("acme", kelvinKim, mail(kelvinKim))

	for _, c := range []struct {
		filter string
		want   []string
	}{
		{`userName eq "kim@acme.com"`, []string{kimID}},
		{`userName eq "KIM@ACME.com"`, []string{kimID}},
		{`userName eq "` + kelvinKim + `"`, []string{kelvinID}},
		{`emails.value eq "kim@acme.com"`, []string{kimID}},
		{`emails[value eq "kim@acme.com"]`, []string{kimID}},
		{`emails[value eq "kim@acme.com"] and not (userName eq "` + kelvinKim + `")`, []string{kimID}},
		{`emails[value eq "` + kelvinKim + `"] and not (userName eq "kim@acme.com")`, []string{kelvinID}},
	} {
		r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(c.filter), nil)
		var got []string
		for _, res := range resources(t, r) {
			got = append(got, res["id"].(string))
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(c.want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", c.filter, got, want)
		}
	}

	g := e.createGroup("acme", "ssogate-admins")
	lookAlike := e.createGroup("acme", "\u017Fsogate-admins") // LONG S
	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Groups?filter="+url.QueryEscape(`displayName eq "SSOGATE-admins"`), nil)
	if res := resources(t, r); len(res) != 1 || res[0]["id"] != g {
		t.Errorf("displayName eq: %s (look-alike %s)", r.raw, lookAlike)
	}
}

// A provisioned address is one addr-spec: no value that passes a domain
// check as one person and reaches an upstream as another.
func TestUserAddressesAreSingleAddrSpecs(t *testing.T) {
	e := newEnv(t)
	user := func(userName string, emails ...string) map[string]any {
		b := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": userName, "active": true}
		var es []any
		for _, v := range emails {
			es = append(es, map[string]any{"value": v, "type": "work"})
		}
		if es != nil {
			b["emails"] = es
		}
		return b
	}
	for _, body := range []map[string]any{
		user("alice@evil.test@acme.com"),
		user(`"alice@evil.test"@acme.com`),
		user("alice@acme.com,mallory@acme.com"),
		user("alice,mallory"),
		user("alice@acme.com", "alice@acme.com, mallory@acme.com"),
		user("alice@acme.com", "alice@evil.test@acme.com"),
		user("alice@acme.com", "alice\n@acme.com"),
		user("alice@acme.com", "alice(comment)@acme.com"),
		user("alice@acme.com", "alice@[192.0.2.1]"),
	} {
		e.scimError(e.call("acme", http.MethodPost, "/Users", body), http.StatusBadRequest, "invalidValue")
	}
	if n, _ := e.store.CountUsers("acme"); n != 0 {
		t.Errorf("%d users stored from refused requests", n)
	}
}
