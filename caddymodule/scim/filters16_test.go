package scim

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/ssogate/ssogate/store"
)

func TestNormalizeFilter(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`emails[type eq "work"].value eq "x@y"`, `emails[type eq "work" and value eq "x@y"]`},
		{`emails[type eq "work"].value pr`, `emails[type eq "work" and value pr]`},
		{`emails[type eq "work" and primary eq true].value eq "x" and active eq true`, `emails[type eq "work" and primary eq true and value eq "x"] and active eq true`},
		{`emails[type eq "a" or type eq "b"].value eq "x"`, `emails[type eq "a" or type eq "b"].value eq "x"`},
		{`emails[type eq "a or b"].value eq "x"`, `emails[type eq "a or b" and value eq "x"]`},
		{`userName eq "a].b" and emails[type eq "work"].value sw "x"`, `userName eq "a].b" and emails[type eq "work" and value sw "x"]`},
		{`emails[value eq "x"]`, `emails[value eq "x"]`},
		{`userName eq "x"`, `userName eq "x"`},
		{`emails[type eq "w"].`, `emails[type eq "w"].`},
		{`emails[type eq "w"].value eq`, `emails[type eq "w"].value eq`},
		{`emails[type eq "w"].value eq "unterminated`, `emails[type eq "w"].value eq "unterminated`},
		{`].x eq "y"`, `].x eq "y"`},
	} {
		if got := normalizeFilter(c.in); got != c.want {
			t.Errorf("normalizeFilter(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Entra ID sends emails[type eq "work"].value eq "…" whenever email is a
// matching attribute, and its Test Connection looks a random address up
// that way (as a GET, and some tenants as POST /.search).
func TestEntraEmailMatchingFilter(t *testing.T) {
	e := newEnv(t)
	kim := e.createUser("acme", "kim@acme.com", map[string]any{
		"emails": []any{map[string]any{"value": "Kim.Lee@acme.com", "type": "work", "primary": true}, map[string]any{"value": "kim@home.example", "type": "home"}},
	})
	e.createUser("globex", "kim@acme.com", map[string]any{"emails": []any{map[string]any{"value": "kim.lee@acme.com", "type": "work"}}})

	// Test Connection: an address nobody has.
	q := "/Users?filter=" + url.QueryEscape(`emails[type eq "work"].value eq "9d2b4a52-0c6e-4b8e-8d4e-2f1a4f1d8c3b@acme.com"`)
	r := e.must(http.StatusOK, "acme", http.MethodGet, q, nil)
	if num(r.body["totalResults"]) != 0 || len(resources(t, r)) != 0 {
		t.Fatalf("test connection: %s", r.raw)
	}
	for _, c := range []struct {
		filter string
		want   []string
	}{
		{`emails[type eq "work"].value eq "kim.lee@ACME.com"`, []string{kim}},
		{`emails[type eq "home"].value eq "kim.lee@acme.com"`, nil}, // the same value must be the one typed "home"
		{`emails[type eq "home"].value eq "kim@home.example"`, []string{kim}},
		{`emails[type eq "work"].value eq "kim.lee@acme.com" and active eq true`, []string{kim}},
		{`emails[type eq "work"].value sw "kim."`, []string{kim}},
	} {
		r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(c.filter), nil)
		var got []string
		for _, res := range resources(t, r) {
			got = append(got, res["id"].(string))
		}
		if !slices.Equal(got, c.want) || num(r.body["totalResults"]) != len(c.want) {
			t.Errorf("%s: got %v, want %v (%s)", c.filter, got, c.want, r.raw)
		}
	}
	r = e.must(http.StatusOK, "acme", http.MethodPost, "/Users/.search", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"},
		"filter":  `emails[type eq "work"].value eq "kim.lee@acme.com"`,
	})
	if res := resources(t, r); len(res) != 1 || res[0]["id"] != kim {
		t.Fatalf(".search: %s", r.raw)
	}
	// The rewritten filter is held to the same caps as any other.
	// (The rewrite is 4 bytes longer.)
	entra := `emails[type eq "work"].value eq "x@acme.com"`
	e2 := newEnv(t, func(c *Config) { c.Limits.MaxFilterLength = len(entra) + 2 })
	e2.scimError(e2.call("acme", http.MethodGet, "/Users?filter="+url.QueryEscape(entra), nil), http.StatusBadRequest, "invalidFilter")
}

// The library validates a whole filter against one schema at a time, so
// an extension attribute next to a core one failed ("the uri does not
// match the schema id"), and alone it was refused as unindexed.
func TestExtensionAttributeFilters(t *testing.T) {
	e := newEnv(t)
	boss := e.createUser("acme", "boss@acme.com", nil)
	sales := e.createUser("acme", "sales@acme.com", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User", enterpriseURN},
		enterpriseURN: map[string]any{"department": "Sales", "employeeNumber": "701", "manager": map[string]any{"value": boss}},
	})
	e.createUser("acme", "ops@acme.com", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User", enterpriseURN},
		enterpriseURN: map[string]any{"department": "Ops"},
	})
	for _, c := range []struct {
		filter string
		want   []string
	}{
		{enterpriseURN + `:department eq "Sales"`, []string{sales}},
		{enterpriseURN + `:employeeNumber eq "701"`, []string{sales}},
		{`userName eq "sales@acme.com" and ` + enterpriseURN + `:department eq "Sales"`, []string{sales}},
		{`userName eq "sales@acme.com" and ` + enterpriseURN + `:department eq "Ops"`, nil},
		{enterpriseURN + `:manager.value eq "` + boss + `"`, []string{sales}},
		{`active eq true and not (` + enterpriseURN + `:department pr)`, []string{boss}},
	} {
		r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(c.filter), nil)
		var got []string
		for _, res := range resources(t, r) {
			got = append(got, res["id"].(string))
		}
		if !slices.Equal(got, c.want) || num(r.body["totalResults"]) != len(c.want) {
			t.Errorf("%s: got %v, want %v (%s)", c.filter, got, c.want, r.raw)
		}
	}
	e.scimError(e.call("acme", http.MethodGet, "/Users?filter="+url.QueryEscape(enterpriseURN+`:nosuch eq "x"`), nil), http.StatusBadRequest, "invalidFilter")
}

// A filter no index bounds reads every resource of the organization, so
// it is answered only up to the candidate bound; past it, tooMany, while
// indexed filters keep working.
func TestUnindexedFilterBound(t *testing.T) {
	e := newEnv(t)
	for i := range mostGroupCandidates + 1 {
		if err := e.store.CreateGroup(&store.Group{OrgID: "acme", DisplayName: fmt.Sprintf("group-%04d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	e.scimError(e.call("acme", http.MethodGet, "/Groups?filter="+url.QueryEscape(`displayName sw "group-00"`), nil), http.StatusBadRequest, "tooMany")
	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Groups?filter="+url.QueryEscape(`displayName eq "group-0007"`), nil)
	if res := resources(t, r); len(res) != 1 || res[0]["displayName"] != "group-0007" {
		t.Fatalf("indexed equality: %s", r.raw)
	}
	// Another organization's size does not count.
	e.createGroup("globex", "group-0001")
	r = e.must(http.StatusOK, "globex", http.MethodGet, "/Groups?filter="+url.QueryEscape(`displayName sw "group-00"`), nil)
	if num(r.body["totalResults"]) != 1 {
		t.Fatalf("other org: %s", r.raw)
	}
}
