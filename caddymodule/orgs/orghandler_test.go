package orgs

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/store"
)

const orgAPI = "/sso/admin/api/org"

// orgClient calls an OrgHandler the way the gateway mounts it for one
// organization's signed-in admin.
type orgClient struct {
	t   *testing.T
	srv *httptest.Server
}

func (e *env) orgClient(orgID, actor string) *orgClient {
	e.t.Helper()
	h := e.svc.OrgHandler(orgAPI+"/",
		func(*http.Request) string { return orgID },
		func(*http.Request) string { return actor })
	srv := httptest.NewServer(h)
	e.t.Cleanup(srv.Close)
	return &orgClient{t: e.t, srv: srv}
}

func (c *orgClient) must(status int, method, path string, body any) response {
	c.t.Helper()
	var rdr io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rdr = strings.NewReader(s)
		} else {
			j, _ := json.Marshal(body)
			rdr = bytes.NewReader(j)
		}
	}
	req, err := http.NewRequest(method, c.srv.URL+orgAPI+path, rdr)
	if err != nil {
		c.t.Fatal(err)
	}
	if rdr != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.srv.Client().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, resp.StatusCode, status, raw)
	}
	if ct := resp.Header.Get("Content-Type"); status != http.StatusNoContent && ct != "application/json" {
		c.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return response{status: resp.StatusCode, header: resp.Header, raw: raw}
}

// orgSnapshot captures one organization's record, domains, users and
// audit trail.
func (e *env) orgSnapshot(orgID string) string {
	e.t.Helper()
	o, err := e.store.GetOrg(orgID)
	if err != nil {
		e.t.Fatal(err)
	}
	domains, _ := e.store.ListDomains(orgID)
	users, _, _ := e.store.ListUsers(orgID, 0, 1000)
	events, _ := e.store.ListAudit(orgID, 1000)
	j, _ := json.Marshal([]any{o, domains, users, events})
	return string(j)
}

// TestOrgHandlerIsolation: an org admin's API reaches its own organization
// only. Another organization's domains and users cannot be read, changed
// or removed by name or by ID, and operator-only operations are absent.
func TestOrgHandlerIsolation(t *testing.T) {
	e := newEnv(t)
	e.createOrg("org-a")
	e.createOrg("org-b")
	e.must(http.StatusCreated, "POST", "/sso/orgs/org-a/domains", map[string]string{"name": "a.example"})
	e.must(http.StatusCreated, "POST", "/sso/orgs/org-b/domains", map[string]string{"name": "b.example"})
	e.must(http.StatusOK, "POST", "/sso/orgs/org-b/domains/b.example/verify", map[string]bool{"force": true})
	bob := e.signedInOnce("org-b", "owner@org-b.example.com")
	a := e.orgClient("org-a", "admin@a.example")
	bBefore := e.orgSnapshot("org-b")

	org := a.must(http.StatusOK, "GET", "", nil).object(t)
	if org["id"] != "org-a" || len(org["steps"].([]any)) != 7 {
		t.Errorf("own org = %v", org)
	}
	if d := a.must(http.StatusOK, "GET", "/domains", nil).array(t); len(d) != 1 || d[0].(map[string]any)["name"] != "a.example" {
		t.Errorf("domains = %v", d)
	}
	a.must(http.StatusNotFound, "DELETE", "/domains/b.example", nil)
	a.must(http.StatusNotFound, "POST", "/domains/b.example/verify", nil)
	a.must(http.StatusNotFound, "DELETE", "/local-users/"+bob.ID, nil)
	a.must(http.StatusNotFound, "DELETE", "/local-users/"+bob.UserName, nil)
	a.must(http.StatusNotFound, "POST", "/local-users/"+bob.ID+"/invite", nil)
	a.must(http.StatusNotFound, "PUT", "/backup-login", map[string]string{"user": bob.ID})
	a.must(http.StatusNotFound, "PUT", "/backup-login", map[string]string{"user": bob.UserName})
	// B's verified domain cannot be claimed, and B's name in a path goes
	// nowhere.
	a.must(http.StatusConflict, "POST", "/domains", map[string]string{"name": "b.example"})
	a.must(http.StatusNotFound, "GET", "/orgs/org-b", nil)
	for _, u := range a.must(http.StatusOK, "GET", "/users", nil).array(t) {
		if u.(map[string]any)["id"] == bob.ID {
			t.Error("org B's user listed to org A's admin")
		}
	}
	for _, ev := range a.must(http.StatusOK, "GET", "/audit?limit=1000", nil).array(t) {
		if ev.(map[string]any)["org_id"] != "org-a" {
			t.Errorf("audit event of another org: %v", ev)
		}
	}

	// Operator-only operations are not there.
	a.must(http.StatusMethodNotAllowed, "DELETE", "", nil)
	a.must(http.StatusMethodNotAllowed, "PATCH", "", map[string]any{"allow_idp_initiated": true})
	a.must(http.StatusNotFound, "POST", "/backup-login/reset", nil)
	r := a.must(http.StatusBadRequest, "POST", "/domains/a.example/verify", map[string]bool{"force": true}).object(t)
	if r["field"] != "force" {
		t.Errorf("force from an org admin: %v", r)
	}
	if d := e.domain("org-a", "a.example"); d.Status != store.DomainPending {
		t.Errorf("org admin's force verified the domain: %+v", d)
	}

	if e.orgSnapshot("org-b") != bBefore {
		t.Error("org A's admin changed org B")
	}

	// Without an organization (the gateway found none), nothing is served.
	none := e.orgClient("", "nobody")
	none.must(http.StatusForbidden, "GET", "", nil)
	none.must(http.StatusForbidden, "POST", "/activate", nil)
}

// TestOrgHandlerConfigures runs the configurator's operations through the
// org admin's API: ticks, SCIM token, activation refused with the grey
// steps, then granted; every change is audited under the admin's name.
func TestOrgHandlerConfigures(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	const actor = "owner@acme.example.com"
	a := e.orgClient("acme", actor)

	r := a.must(http.StatusCreated, "POST", "/domains", map[string]string{"name": "acme.com"})
	if loc := r.header.Get("Location"); loc != orgAPI+"/domains/acme.com" {
		t.Errorf("Location = %q", loc)
	}
	token := r.object(t)["token"].(string)
	e.dns.set("acme.com", []string{TXTPrefix + token})
	if d := a.must(http.StatusOK, "POST", "/domains/acme.com/verify", nil).object(t); d["status"] != "verified" {
		t.Errorf("verify = %v", d)
	}
	m := a.must(http.StatusConflict, "POST", "/activate", nil).object(t)["missing"].([]any)
	if len(m) != 6 || m[0] != "Register the app" {
		t.Errorf("missing = %v", m)
	}
	a.must(http.StatusOK, "PUT", "/admin-group", map[string]string{"name": "Admins", "id": "g1"})
	doc, _ := idpMetadata(t)
	a.must(http.StatusOK, "PUT", "/idp", map[string]string{"metadata_xml": doc})
	tok := a.must(http.StatusCreated, "POST", "/scim-token", nil).object(t)
	if tok["token"] == "" || !strings.HasSuffix(tok["scim_base_url"].(string), "/scim/acme/v2") {
		t.Errorf("scim token = %v", tok)
	}
	for _, step := range []string{StepRegister, StepSAML, StepSCIM, StepUsers} {
		a.must(http.StatusOK, "PUT", "/steps/"+step, map[string]bool{"done": true})
	}
	a.must(http.StatusBadRequest, "PUT", "/steps/backup", map[string]bool{"done": true})
	m = a.must(http.StatusConflict, "POST", "/activate", nil).object(t)["missing"].([]any)
	if len(m) != 1 || m[0] != "Backup login" {
		t.Errorf("missing = %v", m)
	}
	e.signedInOnce("acme", actor)
	if b := a.must(http.StatusOK, "GET", "/backup-login", nil).object(t); b["email"] != actor || b["ready"] != true {
		t.Errorf("backup login = %v", b)
	}
	if org := a.must(http.StatusOK, "POST", "/activate", nil).object(t); org["state"] != "active" || org["state_changed_by"] != actor {
		t.Errorf("activated = %v", org)
	}
	if org := a.must(http.StatusOK, "POST", "/deactivate", nil).object(t); org["state"] != "inactive" {
		t.Errorf("deactivated = %v", org)
	}
	events, err := e.store.ListAudit("acme", 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range events {
		if ev.Actor == actor {
			seen[ev.Action+"/"+ev.Outcome] = true
		}
	}
	for _, want := range []string{"domain.add/success", "domain.verify/success", "org.activate/denied", "admin_group.set/success", "idp.set/success",
		"scim.token.rotate/success", "step.set/success", "org.activate/success", "org.deactivate/success"} {
		if !seen[want] {
			t.Errorf("audit lacks %s by %s: %v", want, actor, seen)
		}
	}
}
