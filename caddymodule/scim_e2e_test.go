package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/examples/demo"
)

// scimClient talks to one organization's SCIM endpoint as its IdP would.
type scimClient struct {
	t      *testing.T
	base   string
	token  string
	client *http.Client // nil: a default one
}

// newSCIMClient generates (rotating) the organization's token through
// the admin API.
func newSCIMClient(t *testing.T, org string) scimClient {
	t.Helper()
	out, err := env.Admin(context.Background(), http.MethodPost, env.AdminURL+"/sso/orgs/"+org+"/scim-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token   string `json:"token"`
		BaseURL string `json:"scim_base_url"`
	}
	if err := json.Unmarshal(out, &tok); err != nil || tok.Token == "" {
		t.Fatalf("scim-token response %s: %v", out, err)
	}
	if want := env.GatewayURL + "/sso/scim/" + org + "/v2"; tok.BaseURL != want {
		t.Fatalf("scim_base_url = %q, want %q", tok.BaseURL, want)
	}
	return scimClient{t: t, base: tok.BaseURL, token: tok.Token}
}

func (c scimClient) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rdr)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/scim+json")
	client := c.client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// must requires a status.
func (c scimClient) must(status int, method, path string, body any) map[string]any {
	c.t.Helper()
	got, out := c.do(method, path, body)
	if got != status {
		c.t.Fatalf("SCIM %s %s: status %d, want %d: %v", method, path, got, status, out)
	}
	return out
}

// userID finds a user's SCIM id by userName.
func (c scimClient) userID(userName string) string {
	c.t.Helper()
	out := c.must(http.StatusOK, http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "`+userName+`"`), nil)
	res, _ := out["Resources"].([]any)
	if len(res) != 1 {
		c.t.Fatalf("%s: %d users found: %v", userName, len(res), out)
	}
	return res[0].(map[string]any)["id"].(string)
}

// provision creates a user with that email as userName, or finds the one
// provisioned (or signed in) before.
func (c scimClient) provision(email string) string {
	c.t.Helper()
	status, out := c.do(http.MethodPost, "/Users", map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": email,
		"emails":   []any{map[string]any{"value": email, "type": "work", "primary": true}},
		"active":   true,
	})
	switch status {
	case http.StatusCreated:
		return out["id"].(string)
	case http.StatusConflict:
		id := c.userID(email)
		c.setActive(id, true)
		return id
	}
	c.t.Fatalf("provisioning %s: %d %v", email, status, out)
	return ""
}

func (c scimClient) setActive(id string, active bool) {
	c.t.Helper()
	out := c.must(http.StatusOK, http.MethodPatch, "/Users/"+id, scimPatch(map[string]any{"op": "replace", "value": map[string]any{"active": active}}))
	if out["active"] != active {
		c.t.Fatalf("active = %v, want %v", out["active"], active)
	}
}

func scimPatch(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
}

// signInOK signs b in and checks the upstream sees the user.
func signInOK(t *testing.T, b *browser, email string) {
	t.Helper()
	p := b.signIn(email, demo.DefaultPassword, "")
	if p.status != http.StatusSeeOther {
		t.Fatalf("sign-in of %s: want 303, got %d\n%s", email, p.status, p.body)
	}
	if h := signedIn(t, b); h["X-Sso-Email"] != email {
		t.Fatalf("upstream saw %v", h)
	}
}

// signInRefused checks that a sign-in the IdP completes is refused.
func signInRefused(t *testing.T, email, why string) {
	t.Helper()
	b := newBrowser(t)
	p := b.signIn(email, demo.DefaultPassword, "")
	if p.status != http.StatusForbidden || !strings.Contains(p.body, why) {
		t.Fatalf("sign-in of %s: want 403 mentioning %q, got %d\n%s", email, why, p.status, p.body)
	}
	assertSignedOut(t, b)
}

func TestSCIMTokenIsRequiredAndRotates(t *testing.T) {
	c := newSCIMClient(t, demo.OrgID)
	c.must(http.StatusOK, http.MethodGet, "/ServiceProviderConfig", nil)

	missing := scimClient{t: t, base: c.base}
	if status, out := missing.do(http.MethodGet, "/Users", nil); status != http.StatusUnauthorized || out["status"] != "401" {
		t.Fatalf("no token: %d %v", status, out)
	}
	c2 := newSCIMClient(t, demo.OrgID)
	if status, _ := c.do(http.MethodGet, "/Users", nil); status != http.StatusUnauthorized {
		t.Fatalf("rotated-out token: %d", status)
	}
	c2.must(http.StatusOK, http.MethodGet, "/Users", nil)

	out, err := env.Admin(context.Background(), http.MethodGet, env.AdminURL+"/sso/orgs/"+demo.OrgID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), c2.token) || !strings.Contains(string(out), `"scim_token": true`) {
		t.Errorf("org view: %s", out)
	}
}

// The revocation test of the issue: a signed-in user deactivated by SCIM
// loses access on the next request and cannot sign in again while the IdP
// still signs them in; reactivation restores access.
func TestSCIMDeactivationRevokesAccess(t *testing.T) {
	c := newSCIMClient(t, demo.OrgID)
	b := newBrowser(t)
	signInOK(t, b, demo.AliceEmail)
	id := c.userID(demo.AliceEmail)
	t.Cleanup(func() { c.setActive(id, true) })

	c.setActive(id, false)
	assertSignedOut(t, b)
	signInRefused(t, demo.AliceEmail, "deactivated")

	c.setActive(id, true)
	b2 := newBrowser(t)
	signInOK(t, b2, demo.AliceEmail)

	// Entra ID's shape of the same change.
	c.must(http.StatusOK, http.MethodPatch, "/Users/"+id, scimPatch(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
	assertSignedOut(t, b2)
	c.must(http.StatusOK, http.MethodPatch, "/Users/"+id, scimPatch(map[string]any{"op": "Replace", "path": "active", "value": "True"}))
	signInOK(t, newBrowser(t), demo.AliceEmail)
}

// Once SCIM has pushed the mapped admin group, its membership decides,
// on every request and at sign-in, whatever the IdP asserts.
func TestSCIMAdminGroupMembershipDecides(t *testing.T) {
	c := newSCIMClient(t, demo.OrgID)
	b := newBrowser(t)
	signInOK(t, b, demo.AliceEmail)
	alice := c.userID(demo.AliceEmail)

	g := c.must(http.StatusCreated, http.MethodPost, "/Groups", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"externalId":  demo.AdminGroupID,
		"displayName": demo.AdminGroupName,
		"members":     []any{map[string]any{"value": alice}},
	})
	gid := g["id"].(string)
	t.Cleanup(func() { c.do(http.MethodDelete, "/Groups/"+gid, nil) })
	signedIn(t, b)

	// Removed from the group (Okta's shape): out on the next request, and
	// refused at sign-in although the IdP still asserts the group.
	c.must(http.StatusOK, http.MethodPatch, "/Groups/"+gid, scimPatch(map[string]any{"op": "remove", "path": `members[value eq "` + alice + `"]`}))
	assertSignedOut(t, b)
	signInRefused(t, demo.AliceEmail, "not allowed")

	// Added back (Entra ID's shape): in again.
	c.must(http.StatusOK, http.MethodPatch, "/Groups/"+gid, scimPatch(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"$ref": nil, "value": alice}}}))
	signInOK(t, newBrowser(t), demo.AliceEmail)

	// SCIM membership also admits someone the IdP does not assert the
	// group for: Bob, provisioned and pushed into the group.
	bob := c.provision(demo.BobEmail)
	c.must(http.StatusOK, http.MethodPatch, "/Groups/"+gid, scimPatch(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": bob}}}))
	bb := newBrowser(t)
	signInOK(t, bb, demo.BobEmail)
	// Deleting the group hands the decision back to the asserted groups.
	c.must(http.StatusNoContent, http.MethodDelete, "/Groups/"+gid, nil)
	assertSignedOut(t, bb)
	signInOK(t, newBrowser(t), demo.AliceEmail)
}

// A user SCIM deletes is out on the next request and cannot come back
// through SAML (no new user is created for them) until provisioned again.
func TestSCIMDeleteRevokesAccess(t *testing.T) {
	c := newSCIMClient(t, demo.OrgID)
	// Bob is the subject here: not an admin by the IdP's groups, so the
	// test needs SCIM membership to let him in at all.
	bob := c.provision(demo.BobEmail)
	g := c.must(http.StatusCreated, http.MethodPost, "/Groups", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": demo.AdminGroupName,
		"members":     []any{map[string]any{"value": bob}},
	})
	gid := g["id"].(string)
	t.Cleanup(func() { c.do(http.MethodDelete, "/Groups/"+gid, nil) })
	// Alice keeps her access throughout (she is not a member, so add her).
	alice := c.userID(demo.AliceEmail)
	c.must(http.StatusOK, http.MethodPatch, "/Groups/"+gid, scimPatch(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": alice}}}))

	b := newBrowser(t)
	signInOK(t, b, demo.BobEmail)
	c.must(http.StatusNoContent, http.MethodDelete, "/Users/"+bob, nil)
	assertSignedOut(t, b)
	signInRefused(t, demo.BobEmail, "deactivated")
	if status, out := c.do(http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "`+demo.BobEmail+`"`), nil); status != http.StatusOK || out["totalResults"] != float64(0) {
		t.Fatalf("the refused sign-in created a user: %v", out)
	}

	// Provisioned again and pushed into the group: allowed.
	bob = c.provision(demo.BobEmail)
	c.must(http.StatusOK, http.MethodPatch, "/Groups/"+gid, scimPatch(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": bob}}}))
	signInOK(t, newBrowser(t), demo.BobEmail)
	signInOK(t, newBrowser(t), demo.AliceEmail)
}

func TestSCIMTokensAreScopedToTheirOrganization(t *testing.T) {
	ctx := context.Background()
	orgs := env.AdminURL + "/sso/orgs"
	if _, err := env.Admin(ctx, http.MethodPost, orgs, map[string]any{"id": "scim-other", "name": "Other", "owner_email": "it@other.example"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = env.Admin(ctx, http.MethodDelete, orgs+"/scim-other", nil) })
	mine := newSCIMClient(t, demo.OrgID)
	theirs := newSCIMClient(t, "scim-other")
	alice := mine.userID(demo.AliceEmail)

	// Each token opens its own organization's endpoint only.
	crossed := scimClient{t: t, base: mine.base, token: theirs.token}
	if status, _ := crossed.do(http.MethodGet, "/Users/"+alice, nil); status != http.StatusUnauthorized {
		t.Fatalf("other org's token on this org: %d", status)
	}
	crossed = scimClient{t: t, base: theirs.base, token: mine.token}
	if status, _ := crossed.do(http.MethodGet, "/Users", nil); status != http.StatusUnauthorized {
		t.Fatalf("this org's token on the other org: %d", status)
	}
	// Known ids of another organization are not found, nor changeable.
	theirs.must(http.StatusNotFound, http.MethodGet, "/Users/"+alice, nil)
	theirs.must(http.StatusNotFound, http.MethodPatch, "/Users/"+alice, scimPatch(map[string]any{"op": "replace", "path": "active", "value": false}))
	theirs.must(http.StatusNotFound, http.MethodDelete, "/Users/"+alice, nil)
	out := theirs.must(http.StatusOK, http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "`+demo.AliceEmail+`"`), nil)
	if out["totalResults"] != float64(0) {
		t.Fatalf("other org sees alice: %v", out)
	}
	signInOK(t, newBrowser(t), demo.AliceEmail)
}

// Groups may share a name (issue 16), so a mapping by name that several
// provisioned groups match admits nobody, not even a member of one of
// them and whatever the IdP asserts; the group's ID then decides.
func TestSCIMSharedAdminGroupNameAdmitsNobody(t *testing.T) {
	c := newSCIMClient(t, demo.OrgID)
	b := newBrowser(t)
	signInOK(t, b, demo.AliceEmail)
	alice := c.userID(demo.AliceEmail)

	var gids []string
	t.Cleanup(func() {
		for _, gid := range gids {
			c.do(http.MethodDelete, "/Groups/"+gid, nil)
		}
	})
	for i, name := range []string{demo.AdminGroupName, strings.ToUpper(demo.AdminGroupName)} {
		members := []any{}
		if i == 0 {
			members = append(members, map[string]any{"value": alice})
		}
		g := c.must(http.StatusCreated, http.MethodPost, "/Groups", map[string]any{
			"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
			"displayName": name,
			"members":     members,
		})
		gids = append(gids, g["id"].(string))
	}
	assertSignedOut(t, b)
	signInRefused(t, demo.AliceEmail, "not allowed")

	// Both are listed under the name.
	out := c.must(http.StatusOK, http.MethodGet, "/Groups?excludedAttributes=members&filter="+url.QueryEscape(`displayName eq "`+demo.AdminGroupName+`"`), nil)
	if out["totalResults"].(float64) != 2 {
		t.Fatalf("groups named %q: %v", demo.AdminGroupName, out)
	}

	// The group pushed with the mapped ID decides.
	g := c.must(http.StatusCreated, http.MethodPost, "/Groups", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"externalId":  demo.AdminGroupID,
		"displayName": demo.AdminGroupName,
		"members":     []any{map[string]any{"value": alice}},
	})
	gids = append(gids, g["id"].(string))
	signInOK(t, newBrowser(t), demo.AliceEmail)
}
