package orgs

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// TestAdminAPIHappyPath walks every route the way an operator would set up,
// run and remove an organization.
func TestAdminAPIHappyPath(t *testing.T) {
	e := newEnv(t)

	r := e.must(http.StatusCreated, "POST", "/sso/orgs", map[string]string{
		"id": "acme", "name": "  Acme Inc. ", "owner_email": "IT@Acme.com",
	})
	if got := r.header.Get("Location"); got != "/sso/orgs/acme" {
		t.Errorf("Location = %q", got)
	}
	org := r.object(t)
	if org["name"] != "Acme Inc." || org["owner_email"] != "it@acme.com" || org["state"] != "inactive" {
		t.Errorf("created org = %v", org)
	}
	sp := org["sp"].(map[string]any)
	if sp["entity_id"] != testBase+"acme" || sp["acs_url"] != testBase+"acme/acs" || sp["metadata_url"] != testBase+"acme/metadata" {
		t.Errorf("sp = %v", sp)
	}

	list := e.must(http.StatusOK, "GET", "/sso/orgs", nil).array(t)
	if len(list) != 1 || list[0].(map[string]any)["id"] != "acme" {
		t.Errorf("list = %v", list)
	}

	org = e.must(http.StatusOK, "PATCH", "/sso/orgs/acme", map[string]any{"name": "Acme Corp", "allow_idp_initiated": true}).object(t)
	if org["name"] != "Acme Corp" || org["allow_idp_initiated"] != true {
		t.Errorf("patched org = %v", org)
	}

	r = e.must(http.StatusCreated, "POST", "/sso/orgs/acme/domains", map[string]string{"name": "Acme.COM."})
	dom := r.object(t)
	txt := dom["txt_record"].(map[string]any)
	token, _ := dom["token"].(string)
	if dom["name"] != "acme.com" || dom["status"] != "pending" || txt["name"] != "acme.com" || txt["type"] != "TXT" ||
		txt["value"] != TXTPrefix+token || len(token) < 50 {
		t.Errorf("added domain = %v", dom)
	}
	if got := r.header.Get("Location"); got != "/sso/orgs/acme/domains/acme.com" {
		t.Errorf("Location = %q", got)
	}
	domains := e.must(http.StatusOK, "GET", "/sso/orgs/acme/domains", nil).array(t)
	if len(domains) != 1 {
		t.Fatalf("domains = %v", domains)
	}

	e.dns.set("acme.com", []string{"v=spf1 -all"}, []string{TXTPrefix + token})
	dom = e.must(http.StatusOK, "POST", "/sso/orgs/acme/domains/acme.com/verify", nil).object(t)
	if dom["status"] != "verified" || dom["last_result"] != "TXT record found" {
		t.Errorf("verified domain = %v", dom)
	}

	cert := newCertPEM(t, ecKey(t), time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	org = e.must(http.StatusOK, "PUT", "/sso/orgs/acme/idp", map[string]any{
		"entity_id": "http://www.okta.com/exk1", "sso_url": "https://acme.okta.com/app/sso/saml", "certificates": []string{cert},
	}).object(t)
	idp := org["idp"].(map[string]any)
	if idp["entity_id"] != "http://www.okta.com/exk1" || idp["sso_url"] != "https://acme.okta.com/app/sso/saml" ||
		len(idp["certificates"].([]any)) != 1 || len(idp["certificate_info"].([]any)) != 1 {
		t.Errorf("idp = %v", idp)
	}

	org = e.must(http.StatusOK, "PUT", "/sso/orgs/acme/admin-group", map[string]string{"name": " SSO Admins ", "id": "00g1abc"}).object(t)
	if ag := org["admin_group"].(map[string]any); ag["name"] != "SSO Admins" || ag["id"] != "00g1abc" {
		t.Errorf("admin group = %v", ag)
	}
	e.must(http.StatusCreated, "POST", "/sso/orgs/acme/scim-token", nil)
	for _, step := range []string{StepRegister, StepSAML, StepSCIM, StepUsers} {
		org = e.must(http.StatusOK, "PUT", "/sso/orgs/acme/steps/"+step, map[string]bool{"done": true}).object(t)
	}
	if m := org["missing"].([]any); len(m) != 1 || m[0] != "Backup login" {
		t.Errorf("missing = %v, want only the backup login (the owner never signed in)", m)
	}
	e.signedInOnce("acme", "it@acme.com")
	org = e.must(http.StatusOK, "GET", "/sso/orgs/acme", nil).object(t)
	if m := org["missing"].([]any); len(m) != 0 {
		t.Errorf("missing = %v, want none", m)
	}

	org = e.must(http.StatusOK, "POST", "/sso/orgs/acme/activate", nil).object(t)
	if org["state"] != "active" || org["state_changed_by"] != OperatorActor {
		t.Errorf("activated org = %v", org)
	}

	// Deactivation ends SAML sessions but not backup-login ones.
	u := &store.User{OrgID: "acme", UserName: "alice@acme.com", Active: true, Source: store.SourceSAML}
	if err := e.store.CreateUser(u); err != nil {
		t.Fatal(err)
	}
	for id, method := range map[string]string{"s-saml": "saml", "s-backup": "backup"} {
		err := e.store.CreateSession(&store.Session{ID: id, OrgID: "acme", UserID: u.ID, AuthMethod: method, ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
	}
	org = e.must(http.StatusOK, "POST", "/sso/orgs/acme/deactivate", "{}").object(t)
	if org["state"] != "inactive" {
		t.Errorf("deactivated org = %v", org)
	}
	if _, err := e.store.GetSession("s-saml"); err == nil {
		t.Error("SAML session survived deactivation")
	}
	if _, err := e.store.GetSession("s-backup"); err != nil {
		t.Errorf("backup session: %v", err)
	}

	events := e.must(http.StatusOK, "GET", "/sso/orgs/acme/audit?limit=100", nil).array(t)
	var actions []string
	for _, ev := range events {
		m := ev.(map[string]any)
		if m["actor"] != OperatorActor || m["outcome"] != OutcomeSuccess {
			t.Errorf("audit event %v", m)
		}
		actions = append(actions, m["action"].(string))
	}
	for _, want := range []string{"org.create", "org.update", "domain.add", "domain.verify", "idp.set", "admin_group.set", "scim.token.rotate", "step.set", "org.activate", "org.deactivate"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit trail %v lacks %s", actions, want)
		}
	}
	if got := e.must(http.StatusOK, "GET", "/sso/orgs/acme/audit?limit=2", nil).array(t); len(got) != 2 {
		t.Errorf("audit?limit=2 gave %d events", len(got))
	}

	e.must(http.StatusNoContent, "DELETE", "/sso/orgs/acme/domains/acme.com", nil)
	if owner, err := e.store.OrgForDomain("acme.com"); err == nil {
		t.Errorf("removed domain still routes to %q", owner)
	}
	e.must(http.StatusNoContent, "DELETE", "/sso/orgs/acme", nil)
	e.must(http.StatusNotFound, "GET", "/sso/orgs/acme", nil)
	if list := e.must(http.StatusOK, "GET", "/sso/orgs", nil).array(t); len(list) != 0 {
		t.Errorf("list after delete = %v", list)
	}
	global, err := e.store.ListAudit("", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(global) != 1 || global[0].Action != "org.delete" || global[0].Details["org"] != "acme" {
		t.Errorf("gateway-wide audit = %+v", global)
	}
}

// TestActivationRefusedUntilReady: activation is refused, with the titles
// of the grey steps, until all seven steps are green, and every refusal
// is audited and changes nothing.
func TestActivationRefusedUntilReady(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")

	missingOf := func() []string {
		t.Helper()
		before := e.must(http.StatusOK, "GET", "/sso/orgs/acme", nil).object(t)
		r := e.must(http.StatusConflict, "POST", "/sso/orgs/acme/activate", nil)
		var out []string
		for _, m := range r.object(t)["missing"].([]any) {
			out = append(out, m.(string))
		}
		after := e.must(http.StatusOK, "GET", "/sso/orgs/acme", nil).object(t)
		if after["state"] != "inactive" || after["updated"] != before["updated"] {
			t.Errorf("a refused activation changed the org: %v", after)
		}
		return out
	}
	all := []string{"Domains", "Register the app", "Group mapping", "SAML", "SCIM", "Users", "Backup login"}
	if got := missingOf(); !slices.Equal(got, all) {
		t.Errorf("missing = %q, want %q", got, all)
	}

	e.must(http.StatusCreated, "POST", "/sso/orgs/acme/domains", map[string]string{"name": "acme.com"})
	if got := missingOf(); !slices.Contains(got, "Domains") {
		t.Errorf("a pending domain counted as verified: missing = %q", got)
	}
	e.must(http.StatusOK, "POST", "/sso/orgs/acme/domains/acme.com/verify", map[string]bool{"force": true})
	e.must(http.StatusOK, "PUT", "/sso/orgs/acme/admin-group", map[string]string{"name": "Admins", "id": "g1"})
	for _, step := range []string{StepRegister, StepSAML, StepSCIM, StepUsers} {
		e.must(http.StatusOK, "PUT", "/sso/orgs/acme/steps/"+step, map[string]bool{"done": true})
	}
	// Ticked, but SAML has no settings, SCIM no token, and the owner has
	// never signed in.
	want := []string{"SAML", "SCIM", "Backup login"}
	if got := missingOf(); !slices.Equal(got, want) {
		t.Errorf("missing = %q, want %q", got, want)
	}
	if org := e.must(http.StatusOK, "GET", "/sso/orgs/acme", nil).object(t); org["state"] != "inactive" || len(org["missing"].([]any)) != 3 {
		t.Errorf("org after refusals = %v", org)
	}

	e.must(http.StatusOK, "PUT", "/sso/orgs/acme/idp", map[string]any{
		"entity_id": "urn:idp", "sso_url": "http://127.0.0.1:8081/sso",
		"certificates": []string{newCertPEM(t, ecKey(t), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))},
	})
	e.must(http.StatusCreated, "POST", "/sso/orgs/acme/scim-token", nil)
	// Unticking turns a step grey again.
	e.must(http.StatusOK, "PUT", "/sso/orgs/acme/steps/users", map[string]bool{"done": false})
	e.signedInOnce("acme", "owner@acme.example.com")
	if got := missingOf(); !slices.Equal(got, []string{"Users"}) {
		t.Errorf("missing = %q, want [Users]", got)
	}
	e.must(http.StatusOK, "PUT", "/sso/orgs/acme/steps/users", map[string]bool{"done": true})
	if org := e.must(http.StatusOK, "POST", "/sso/orgs/acme/activate", nil).object(t); org["state"] != "active" {
		t.Errorf("org = %v", org)
	}

	events, err := e.store.ListAudit("acme", 100)
	if err != nil {
		t.Fatal(err)
	}
	denied := 0
	for _, ev := range events {
		if ev.Action == "org.activate" && ev.Outcome == OutcomeDenied {
			denied++
			if ev.Details["missing"] == "" {
				t.Errorf("denied activation without what was missing: %+v", ev)
			}
		}
	}
	if denied != 4 {
		t.Errorf("%d denied activations audited, want 4", denied)
	}
}

func TestDomainVerifiedByAnotherOrg(t *testing.T) {
	e := newEnv(t)
	e.createOrg("org-a")
	e.createOrg("org-b")
	e.createOrg("org-c")

	// Pending claims do not block each other.
	e.must(http.StatusCreated, "POST", "/sso/orgs/org-a/domains", map[string]string{"name": "shared.com"})
	e.must(http.StatusCreated, "POST", "/sso/orgs/org-b/domains", map[string]string{"name": "shared.com"})

	// A verifies through DNS; B publishes its own token too, but too late.
	tokA := e.must(http.StatusOK, "GET", "/sso/orgs/org-a/domains", nil).array(t)[0].(map[string]any)["token"].(string)
	tokB := e.must(http.StatusOK, "GET", "/sso/orgs/org-b/domains", nil).array(t)[0].(map[string]any)["token"].(string)
	if tokA == tokB {
		t.Fatal("two claims got the same token")
	}
	e.dns.set("shared.com", []string{TXTPrefix + tokA}, []string{TXTPrefix + tokB})
	e.must(http.StatusOK, "POST", "/sso/orgs/org-a/domains/shared.com/verify", nil)

	r := e.must(http.StatusConflict, "POST", "/sso/orgs/org-b/domains/shared.com/verify", nil)
	if msg := r.object(t)["error"].(string); !strings.Contains(msg, "verified by another organization") {
		t.Errorf("error = %q", msg)
	}
	// Not even the operator's force overrides the first verifier.
	e.must(http.StatusConflict, "POST", "/sso/orgs/org-b/domains/shared.com/verify", map[string]bool{"force": true})
	before := e.snapshot()
	r = e.must(http.StatusConflict, "POST", "/sso/orgs/org-c/domains", map[string]string{"name": "shared.com"})
	if o := r.object(t); o["field"] != "name" || !strings.Contains(o["error"].(string), "verified by another organization") {
		t.Errorf("error = %v", o)
	}
	if after := e.snapshot(); after != before {
		t.Error("a refused domain claim changed the store")
	}
	if owner, err := e.store.OrgForDomain("shared.com"); err != nil || owner != "org-a" {
		t.Errorf("shared.com routes to %q (%v), want org-a", owner, err)
	}
	dom := e.must(http.StatusOK, "GET", "/sso/orgs/org-b/domains", nil).array(t)[0].(map[string]any)
	if dom["status"] != "pending" || dom["last_result"] != "verified by another organization" {
		t.Errorf("org-b's claim = %v", dom)
	}

	// Removing the domain frees it.
	e.must(http.StatusNoContent, "DELETE", "/sso/orgs/org-a/domains/shared.com", nil)
	e.must(http.StatusOK, "POST", "/sso/orgs/org-b/domains/shared.com/verify", nil)
	if owner, _ := e.store.OrgForDomain("shared.com"); owner != "org-b" {
		t.Errorf("shared.com routes to %q, want org-b", owner)
	}
}

func TestDNSVerification(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	dom := e.must(http.StatusCreated, "POST", "/sso/orgs/acme/domains", map[string]string{"name": "acme.com"}).object(t)
	token := dom["token"].(string)
	verify := func(status int) map[string]any {
		t.Helper()
		return e.must(status, "POST", "/sso/orgs/acme/domains/acme.com/verify", map[string]bool{"force": false}).object(t)
	}
	stored := func() *store.Domain {
		t.Helper()
		d, err := e.store.GetDomain("acme", "acme.com")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	// Nothing published: NXDOMAIN.
	res := verify(http.StatusConflict)
	if msg := res["error"].(string); !strings.Contains(msg, "no TXT record found at acme.com") {
		t.Errorf("error = %q", msg)
	}
	if d := stored(); d.Status != store.DomainPending || d.LastCheck.IsZero() || !strings.Contains(d.LastResult, "no TXT record") {
		t.Errorf("after a failed check: %+v", d)
	}

	// Wrong token (another org's, or an old one).
	e.dns.set("acme.com", []string{TXTPrefix + strings.Repeat("a", len(token))})
	if msg := verify(http.StatusConflict)["error"].(string); !strings.Contains(msg, "but none is") {
		t.Errorf("error = %q", msg)
	}
	// The token at a subdomain does not prove the domain.
	e.dns.set("acme.com")
	e.dns.set("www.acme.com", []string{TXTPrefix + token})
	verify(http.StatusConflict)
	if d := stored(); d.Status != store.DomainPending {
		t.Fatalf("verified without the record: %+v", d)
	}

	// The right record, split in two character-strings as some DNS
	// consoles publish long values.
	e.dns.set("acme.com", []string{"google-site-verification=x"}, []string{TXTPrefix, token})
	res = verify(http.StatusOK)
	if res["status"] != "verified" || res["verified_at"] == nil {
		t.Errorf("verified domain = %v", res)
	}
	if owner, err := e.store.OrgForDomain("acme.com"); err != nil || owner != "acme" {
		t.Errorf("OrgForDomain = %q, %v", owner, err)
	}

	events, err := e.store.ListAudit("acme", 100)
	if err != nil {
		t.Fatal(err)
	}
	var failures, successes int
	for _, ev := range events {
		if ev.Action == "domain.verify" {
			switch ev.Outcome {
			case OutcomeFailure:
				failures++
			case OutcomeSuccess:
				successes++
			}
		}
	}
	if failures != 3 || successes != 1 {
		t.Errorf("audited %d failed and %d successful verifications, want 3 and 1", failures, successes)
	}
}

func TestMetadataImport(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	doc, idp := idpMetadata(t)

	org := e.must(http.StatusOK, "PUT", "/sso/orgs/acme/idp", map[string]string{"metadata_xml": doc}).object(t)
	got := org["idp"].(map[string]any)
	if got["entity_id"] != idp.entityID || got["sso_url"] != idp.ssoURL {
		t.Errorf("idp = %v", got)
	}
	certs := got["certificates"].([]any)
	if len(certs) != 1 || certs[0] != certPEM(idp.cert) {
		t.Errorf("certificates = %v, want the IdP's", certs)
	}

	// An aggregate with exactly one IdP is accepted too.
	agg := `<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` +
		strings.TrimPrefix(doc, `<?xml version="1.0" encoding="UTF-8"?>`) + `</EntitiesDescriptor>`
	e.must(http.StatusOK, "PUT", "/sso/orgs/acme/idp", map[string]string{"metadata_xml": agg})
}

// testIdP is what a generated IdP metadata document declares.
type testIdP struct {
	entityID, ssoURL string
	cert             *x509.Certificate
}

func TestBodyHandling(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	before := e.snapshot()

	cases := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"unknown field", "POST", "/sso/orgs", `{"id":"x1","name":"X","owner_email":"a@x.com","admin":true}`, 400, "admin"},
		{"unknown field on patch", "PATCH", "/sso/orgs/acme", `{"state":"active"}`, 400, "state"},
		{"unknown field on verify", "POST", "/sso/orgs/acme/domains/acme.com/verify", `{"forced":true}`, 400, "forced"},
		{"unknown field on activate", "POST", "/sso/orgs/acme/activate", `{"force":true}`, 400, "force"},
		{"wrong type", "POST", "/sso/orgs", `{"id":"x1","name":5,"owner_email":"a@x.com"}`, 400, "name"},
		{"wrong type array", "PUT", "/sso/orgs/acme/idp", `{"entity_id":"e","sso_url":"https://i/s","certificates":"pem"}`, 400, "certificates"},
		{"not an object", "POST", "/sso/orgs", `["acme"]`, 400, ""},
		{"malformed", "POST", "/sso/orgs", `{"id":`, 400, ""},
		{"syntax error", "POST", "/sso/orgs", `{"id" "x"}`, 400, ""},
		{"two objects", "POST", "/sso/orgs", `{"id":"x1","name":"X","owner_email":"a@x.com"}{}`, 400, ""},
		{"empty body", "POST", "/sso/orgs", ``, 400, ""},
		{"empty patch", "PATCH", "/sso/orgs/acme", `{}`, 400, ""},
		{"too large", "POST", "/sso/orgs", `{"id":"x1","name":"` + strings.Repeat("x", maxRequestBody) + `"}`, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.call(c.method, c.path, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			o := r.object(t)
			if o["error"] == "" || o["error"] == nil {
				t.Errorf("no error message: %s", r.raw)
			}
			if f, _ := o["field"].(string); f != c.field {
				t.Errorf("field = %q, want %q (%s)", f, c.field, r.raw)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}

	// Form posts (curl -d without a JSON content type) are refused.
	req, _ := http.NewRequest("POST", e.srv.URL+"/sso/orgs", strings.NewReader(`{"id":"x1","name":"X","owner_email":"a@x.com"}`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("form post: status %d, want 415", resp.StatusCode)
	}

	if after := e.snapshot(); after != before {
		t.Errorf("refused requests changed the store:\nbefore %s\nafter  %s", before, after)
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")

	r := e.must(http.StatusMethodNotAllowed, "PUT", "/sso/orgs", "{}")
	if allow := r.header.Get("Allow"); allow != "GET, POST, HEAD" {
		t.Errorf("Allow = %q", allow)
	}
	if msg := r.object(t)["error"].(string); !strings.Contains(msg, "PUT") {
		t.Errorf("error = %q", msg)
	}
	e.must(http.StatusMethodNotAllowed, "GET", "/sso/orgs/acme/activate", nil)
	e.must(http.StatusMethodNotAllowed, "POST", "/sso/orgs/acme/idp", "{}")
	e.must(http.StatusMethodNotAllowed, "GET", "/sso/orgs/acme/domains/acme.com/verify", nil)

	r = e.must(http.StatusNotFound, "GET", "/sso/nope", nil)
	if r.object(t)["error"] == nil {
		t.Errorf("404 without JSON error: %s", r.raw)
	}
	e.must(http.StatusNotFound, "GET", "/sso/orgs/acme/domains/acme.com/verify/more", nil)

	for _, p := range []string{"/sso/orgs/nope", "/sso/orgs/nope/domains", "/sso/orgs/nope/audit", "/sso/orgs/Not%20A%20Slug"} {
		e.must(http.StatusNotFound, "GET", p, nil)
	}
	e.must(http.StatusNotFound, "POST", "/sso/orgs/nope/activate", nil)
	e.must(http.StatusNotFound, "POST", "/sso/orgs/nope/deactivate", nil)
	e.must(http.StatusNotFound, "DELETE", "/sso/orgs/nope", nil)
	e.must(http.StatusNotFound, "PATCH", "/sso/orgs/nope", `{"name":"x"}`)
	e.must(http.StatusNotFound, "PUT", "/sso/orgs/nope/admin-group", `{"name":"x","id":"y"}`)
	e.must(http.StatusNotFound, "POST", "/sso/orgs/nope/domains", `{"name":"nope.com"}`)
	e.must(http.StatusNotFound, "DELETE", "/sso/orgs/acme/domains/other.com", nil)
	e.must(http.StatusNotFound, "POST", "/sso/orgs/acme/domains/other.com/verify", nil)

	e.must(http.StatusBadRequest, "GET", "/sso/orgs/acme/audit?limit=abc", nil)
	e.must(http.StatusBadRequest, "GET", "/sso/orgs/acme/audit?limit=0", nil)
	e.must(http.StatusBadRequest, "GET", "/sso/orgs/acme/audit?limit=100000", nil)
}

// TestNoSecretsShown checks that the SCIM token hash never leaves the
// service, only the fact that a token exists.
func TestNoSecretsShown(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	hash := make([]byte, 32)
	if _, err := rand.Read(hash); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.UpdateOrg("acme", func(o *store.Org) error {
		o.SCIMTokenHash = hash
		o.SCIMTokenCreated = time.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := e.must(http.StatusOK, "GET", "/sso/orgs/acme", nil)
	if strings.Contains(string(r.raw), "scim_token_hash") || strings.Contains(string(r.raw), base64.StdEncoding.EncodeToString(hash)) {
		t.Errorf("org view shows the SCIM token hash: %s", r.raw)
	}
	if r.object(t)["scim_token"] != true {
		t.Errorf("scim_token not shown as present: %s", r.raw)
	}
	if l := e.must(http.StatusOK, "GET", "/sso/orgs", nil); strings.Contains(string(l.raw), "scim_token_hash") {
		t.Errorf("org list shows the SCIM token hash: %s", l.raw)
	}
}

// TestPrivateKeyNotEchoed: a private key pasted in place of a certificate is
// refused without being repeated in the error or stored.
func TestPrivateKeyNotEchoed(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	before := e.snapshot()
	r := e.must(http.StatusBadRequest, "PUT", "/sso/orgs/acme/idp", map[string]any{
		"entity_id": "urn:idp", "sso_url": "https://idp.example.org/sso", "certificates": []string{keyPEM},
	})
	body := string(r.raw)
	lines := strings.Split(strings.TrimSpace(keyPEM), "\n")
	if strings.Contains(body, lines[1]) || strings.Contains(body, lines[len(lines)-2]) {
		t.Errorf("error echoes the key: %s", body)
	}
	if !strings.Contains(body, "only CERTIFICATE blocks") {
		t.Errorf("error = %s", body)
	}
	if e.snapshot() != before {
		t.Error("refused IdP settings changed the store")
	}
}

// Answers that carry a secret shown once must not be kept by a cache.
func TestAnswersAreNotCached(t *testing.T) {
	e := newEnv(t)
	e.readyOrg("acme", "acme.com")
	resp, err := http.Post(e.srv.URL+"/sso/orgs/acme/scim-token", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("scim-token: %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
}
