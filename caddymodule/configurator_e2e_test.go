package caddymodule_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ssogate/ssogate/examples/demo"
)

// End-to-end tests of the configurator's JSON API ({prefix}/admin/api)
// and HTML page ({prefix}/admin/), as an org admin signed in with a
// password: each step's rules, isolation between organizations, CSRF and
// the behaviour without a session. Domain verification asks a real DNS
// server on loopback, which the gateway is pointed at through the `sso`
// app's dns_resolver.

// testDNS is an authoritative-for-everything DNS server on loopback that
// answers TXT queries from a table the test edits.
type testDNS struct {
	addr string
	mu   sync.Mutex
	txt  map[string][]string
}

// startDNS starts the server and reloads the gateway with dns_resolver
// pointing at it (the original config comes back when the test ends).
func startDNS(t *testing.T, extraSSO map[string]any) *testDNS {
	t.Helper()
	d := &testDNS{txt: map[string][]string{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.addr = pc.LocalAddr().String()
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: d, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	sso := map[string]any{"dns_resolver": d.addr}
	for k, v := range extraSSO {
		sso[k] = v
	}
	// Registered first, so it runs after reloadWithSSO's restore: the next
	// test's first admin call then meets a settled admin server.
	t.Cleanup(func() { waitAdmin(t) })
	reloadWithSSO(t, sso)
	return d
}

// waitAdmin waits until the admin endpoint answers on a new connection: a
// config load restarts it, and a call racing the restart can be reset.
func waitAdmin(t *testing.T) {
	t.Helper()
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; ; i++ {
		resp, err := c.Get(env.AdminURL + "/sso/orgs")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				http.DefaultClient.CloseIdleConnections()
				return
			}
		}
		if i == 100 {
			t.Fatalf("admin endpoint not answering after reload: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// set publishes (or, without values, removes) the TXT records of name.
func (d *testDNS) set(name string, values ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(values) == 0 {
		delete(d.txt, dns.Fqdn(name))
		return
	}
	d.txt[dns.Fqdn(name)] = values
}

func (d *testDNS) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) == 1 {
		qn := strings.ToLower(q.Question[0].Name)
		d.mu.Lock()
		vals, ok := d.txt[qn]
		d.mu.Unlock()
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeTXT:
			for _, v := range vals {
				m.Answer = append(m.Answer, &dns.TXT{
					Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: []string{v},
				})
			}
		}
	}
	_ = w.WriteMsg(m)
}

// fastHashing keeps the argon2id cost low, so tests that set passwords do
// not spend seconds hashing.
var fastHashing = map[string]any{"password_hashing": map[string]any{"time": 1, "memory_kib": 8192, "threads": 1}}

// orgAdminBrowser creates an org (no domain) whose owner sets a password
// and signs in from ip; it returns the signed-in browser and the owner's
// address.
func orgAdminBrowser(t *testing.T, org, domain, ip string) (*browser, string) {
	t.Helper()
	owner := "owner@" + domain
	link := newLocalOrg(t, org, owner, "")
	b := newBrowserFrom(t, ip)
	if p := b.setPassword(link, strongPassword); p.status >= 400 {
		t.Fatalf("set password: %d\n%s", p.status, p.body)
	}
	if p := b.backupSignIn(owner, strongPassword, org); p.status != http.StatusSeeOther {
		t.Fatalf("owner sign-in: %d\n%s", p.status, p.body)
	}
	return b, owner
}

// steps returns the org view's step states by name, via the org admin API.
func steps(t *testing.T, b *browser) (map[string]bool, map[string]any) {
	t.Helper()
	status, v, _ := b.api(http.MethodGet, "/sso/admin/api", nil, "")
	if status != http.StatusOK {
		t.Fatalf("GET /sso/admin/api: %d %v", status, v)
	}
	out := map[string]bool{}
	list, _ := v["steps"].([]any)
	for _, s := range list {
		m := s.(map[string]any)
		out[m["name"].(string)] = m["done"] == true
	}
	if len(out) != 7 {
		t.Fatalf("want 7 steps, got %v", v["steps"])
	}
	return out, v
}

// testCertPEM makes a self-signed RSA-2048 certificate valid from nb to na.
func testCertPEM(t *testing.T, cn string, nb, na time.Time) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestOrgAdminAPIStepRules walks every step through the org admin API:
// each turns green only by its rule, activation lists the grey steps until
// all seven are green, and deactivation ends SSO.
func TestOrgAdminAPIStepRules(t *testing.T) {
	dnsSrv := startDNS(t, fastHashing)
	org := uniqueOrg("cfg-api")
	domain := org + ".test"
	b, owner := orgAdminBrowser(t, org, domain, "127.0.0.40")
	csrf := b.csrfToken()

	st, v := steps(t, b)
	if v["id"] != org {
		t.Fatalf("org view of another org: %v", v["id"])
	}
	for _, name := range []string{"domains", "register", "groups", "saml", "scim", "users"} {
		if st[name] {
			t.Errorf("step %s green on a new org", name)
		}
	}
	// The owner is the backup login from creation and has signed in.
	if !st["backup"] {
		t.Errorf("backup step grey although the owner signed in: %v", v["steps"])
	}
	status, body, _ := b.api(http.MethodPost, "/sso/admin/api/activate", nil, csrf)
	if status != http.StatusConflict || len(body["missing"].([]any)) != 6 {
		t.Fatalf("activate on a new org: %d %v", status, body)
	}

	// "Start configuring" through the API, as the page's button does.
	if v["started"] == true {
		t.Fatalf("started before anyone opened the configurator: %v", v)
	}
	if status, _, _ := b.api(http.MethodPost, "/sso/admin/api/start", nil, ""); status != http.StatusForbidden {
		t.Errorf("start without CSRF token: %d", status)
	}
	if status, _, _ := b.api(http.MethodGet, "/sso/admin/api/start", nil, csrf); status != http.StatusMethodNotAllowed {
		t.Errorf("GET start: %d", status)
	}
	if status, body, _ := b.api(http.MethodPost, "/sso/admin/api/start", nil, csrf); status != http.StatusOK || body["started"] != true {
		t.Fatalf("start: %d %v", status, body)
	}

	// 1. Domains: green with ≥ 1 domain, all verified, through DNS.
	if status, body, _ := b.api(http.MethodPost, "/sso/admin/api/domains", map[string]any{"name": "com"}, csrf); status != http.StatusBadRequest {
		t.Errorf("public suffix: %d %v", status, body)
	}
	status, body, _ = b.api(http.MethodPost, "/sso/admin/api/domains", map[string]any{"name": strings.ToUpper(domain)}, csrf)
	if status != http.StatusCreated {
		t.Fatalf("add domain: %d %v", status, body)
	}
	txt := body["txt_record"].(map[string]any)
	if txt["name"] != domain || !strings.HasPrefix(txt["value"].(string), "ssogate-verification=") {
		t.Fatalf("TXT record: %v", txt)
	}
	if status, body, _ := b.api(http.MethodPost, "/sso/admin/api/domains/"+domain+"/verify", nil, csrf); status != http.StatusConflict {
		t.Errorf("verify without the record: %d %v", status, body)
	}
	dnsSrv.set(domain, "v=spf1 -all", "ssogate-verification=wrong")
	if status, body, _ := b.api(http.MethodPost, "/sso/admin/api/domains/"+domain+"/verify", nil, csrf); status != http.StatusConflict {
		t.Errorf("verify with a wrong token: %d %v", status, body)
	}
	// Only the operator may vouch for a domain.
	if status, _, _ := b.api(http.MethodPost, "/sso/admin/api/domains/"+domain+"/verify", map[string]any{"force": true}, csrf); status == http.StatusOK {
		t.Errorf("org admin forced verification")
	}
	if st, _ := steps(t, b); st["domains"] {
		t.Errorf("domains green with an unverified domain")
	}
	dnsSrv.set(domain, txt["value"].(string))
	if status, body, _ := b.api(http.MethodPost, "/sso/admin/api/domains/"+domain+"/verify", nil, csrf); status != http.StatusOK || body["status"] != "verified" {
		t.Fatalf("verify with the record: %d %v", status, body)
	}
	if st, _ := steps(t, b); !st["domains"] {
		t.Errorf("domains grey after verification")
	}
	second := "second-" + domain
	if status, _, _ := b.api(http.MethodPost, "/sso/admin/api/domains", map[string]any{"name": second}, csrf); status != http.StatusCreated {
		t.Fatalf("second domain: %d", status)
	}
	if st, _ := steps(t, b); st["domains"] {
		t.Errorf("domains green with a second, unverified domain")
	}
	if status, _, _ := b.api(http.MethodDelete, "/sso/admin/api/domains/"+second, nil, csrf); status != http.StatusNoContent {
		t.Errorf("remove second domain: %d", status)
	}

	// 2. Register: green when ticked; untick turns it grey again; steps
	// without a tick refuse one.
	for _, done := range []bool{true, false, true} {
		if status, body, _ := b.api(http.MethodPut, "/sso/admin/api/steps/register", map[string]any{"done": done}, csrf); status != http.StatusOK {
			t.Fatalf("tick register: %d %v", status, body)
		}
		if st, _ := steps(t, b); st["register"] != done {
			t.Errorf("register green=%v after tick %v", st["register"], done)
		}
	}
	for _, step := range []string{"domains", "groups", "backup", "nonsense"} {
		if status, _, _ := b.api(http.MethodPut, "/sso/admin/api/steps/"+step, map[string]any{"done": true}, csrf); status != http.StatusBadRequest {
			t.Errorf("tick %s: %d", step, status)
		}
	}

	// 3. Group mapping: name and ID required.
	status, body, _ = b.api(http.MethodPut, "/sso/admin/api/admin-group", map[string]any{"name": "Admins", "id": ""}, csrf)
	if status != http.StatusBadRequest || body["field"] != "id" {
		t.Errorf("group without ID: %d %v", status, body)
	}
	if status, _, _ := b.api(http.MethodPut, "/sso/admin/api/admin-group", map[string]any{"name": "Admins", "id": "00gADMINS"}, csrf); status != http.StatusOK {
		t.Errorf("group: %d", status)
	}
	if st, _ := steps(t, b); !st["groups"] {
		t.Errorf("groups grey after saving")
	}

	// 4. SAML: validated on save, green when saved and ticked.
	now := time.Now()
	good := testCertPEM(t, "idp.example", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	expired := testCertPEM(t, "old-idp.example", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	for _, c := range []struct {
		in    map[string]any
		field string
	}{
		{map[string]any{"entity_id": "https://idp.example/e", "sso_url": "http://idp.example/sso", "certificates": []string{good}}, "sso_url"},
		{map[string]any{"entity_id": "https://idp.example/e", "sso_url": "https://idp.example/sso", "certificates": []string{expired}}, "certificates"},
		{map[string]any{"entity_id": "https://idp.example/e", "sso_url": "https://idp.example/sso", "certificates": []string{"not a certificate"}}, "certificates"},
		{map[string]any{"entity_id": "https://idp.example/e", "sso_url": "https://idp.example/sso"}, "certificates"},
		{map[string]any{"metadata_xml": "<nope/>"}, "metadata_xml"},
	} {
		status, body, _ := b.api(http.MethodPut, "/sso/admin/api/idp", c.in, csrf)
		if status != http.StatusBadRequest || body["field"] != c.field {
			t.Errorf("IdP %v: want 400 on %s, got %d %v", c.field, c.field, status, body)
		}
	}
	if st, _ := steps(t, b); st["saml"] {
		t.Errorf("saml green after refused input")
	}
	status, body, _ = b.api(http.MethodPut, "/sso/admin/api/idp", map[string]any{"entity_id": "https://idp.example/e", "sso_url": "https://idp.example/sso", "certificates": []string{good}}, csrf)
	if status != http.StatusOK {
		t.Fatalf("IdP: %d %v", status, body)
	}
	if st, _ := steps(t, b); st["saml"] {
		t.Errorf("saml green before the tick")
	}
	b.api(http.MethodPut, "/sso/admin/api/steps/saml", map[string]any{"done": true}, csrf)
	if st, _ := steps(t, b); !st["saml"] {
		t.Errorf("saml grey after save and tick")
	}

	// 5. SCIM: a token and the tick.
	b.api(http.MethodPut, "/sso/admin/api/steps/scim", map[string]any{"done": true}, csrf)
	if st, _ := steps(t, b); st["scim"] {
		t.Errorf("scim green without a token")
	}
	status, body, _ = b.api(http.MethodPost, "/sso/admin/api/scim-token", nil, csrf)
	if status != http.StatusCreated || len(body["token"].(string)) < 40 || !strings.HasSuffix(body["scim_base_url"].(string), "/scim/"+org+"/v2") {
		t.Fatalf("SCIM token: %d %v", status, body)
	}
	if st, _ := steps(t, b); !st["scim"] {
		t.Errorf("scim grey with a token and the tick")
	}
	// The view tells when the IdP last used the token (touches are
	// written about once a second).
	req, _ := http.NewRequest(http.MethodGet, body["scim_base_url"].(string)+"/Users", nil)
	req.Header.Set("Authorization", "Bearer "+body["token"].(string))
	if p := b.do(req); p.status != http.StatusOK {
		t.Fatalf("SCIM with the new token: %d", p.status)
	}
	for i := 0; ; i++ {
		if _, v := steps(t, b); v["scim_token_last_used"] != nil {
			break
		}
		if i == 50 {
			t.Fatalf("scim_token_last_used not set after use")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// 6. Users: the tick.
	b.api(http.MethodPut, "/sso/admin/api/steps/users", map[string]any{"done": true}, csrf)

	// 7. Backup login: an account that never signed in is not eligible.
	status, link, _ := b.api(http.MethodPost, "/sso/admin/api/local-users", map[string]any{"email": "new@" + domain, "role": "admin"}, csrf)
	if status != http.StatusCreated {
		t.Fatalf("invite: %d %v", status, link)
	}
	status, body, _ = b.api(http.MethodPut, "/sso/admin/api/backup-login", map[string]any{"user": "new@" + domain}, csrf)
	if status != http.StatusConflict || body["field"] != "user" {
		t.Errorf("backup to an account that never signed in: %d %v", status, body)
	}
	// An admin cannot remove their own account through the API.
	if status, _, _ := b.api(http.MethodDelete, "/sso/admin/api/local-users/"+owner, nil, csrf); status != http.StatusConflict {
		t.Errorf("removing oneself: %d", status)
	}

	st, v = steps(t, b)
	for name, done := range st {
		if !done {
			t.Errorf("step %s grey at the end: %v", name, v["steps"])
		}
	}
	status, body, _ = b.api(http.MethodPost, "/sso/admin/api/activate", nil, csrf)
	if status != http.StatusOK || body["state"] != "active" {
		t.Fatalf("activate: %d %v", status, body)
	}
	// Unticking a step does not deactivate, but the page would show it grey.
	status, body, _ = b.api(http.MethodPost, "/sso/admin/api/deactivate", nil, csrf)
	if status != http.StatusOK || body["state"] != "inactive" {
		t.Fatalf("deactivate: %d %v", status, body)
	}
	a := auditActions(t, org)
	for _, k := range []string{"domain.verify/success", "domain.verify/failure", "org.activate/success", "org.activate/denied", "org.deactivate/success", "scim.token.rotate/success"} {
		if a[k] == 0 {
			t.Errorf("no audit event %s: %v", k, a)
		}
	}
}

// TestOrgAdminAPIIsolation: the admin of org B cannot read or change org A
// through the API or the page, by ?org=, by name or by ID.
func TestOrgAdminAPIIsolation(t *testing.T) {
	orgA, orgB := uniqueOrg("cfg-iso-a"), uniqueOrg("cfg-iso-b")
	a, _ := orgAdminBrowser(t, orgA, orgA+".test", "127.0.0.41")
	b, _ := orgAdminBrowser(t, orgB, orgB+".test", "127.0.0.42")
	csrfA, csrfB := a.csrfToken(), b.csrfToken()
	if status, _, _ := a.api(http.MethodPost, "/sso/admin/api/domains", map[string]any{"name": orgA + ".test"}, csrfA); status != http.StatusCreated {
		t.Fatalf("A adds its domain: %d", status)
	}
	aOwner := adminJSON(t, http.MethodGet, "/orgs/"+orgA, nil)["backup_login"].(string)

	for _, path := range []string{"/sso/admin/api?org=" + orgA, "/sso/admin/api/domains?org=" + orgA, "/sso/admin/api/audit?org=" + orgA} {
		if status, _, _ := b.api(http.MethodGet, path, nil, ""); status != http.StatusForbidden {
			t.Errorf("B GET %s: %d", path, status)
		}
	}
	if p := b.get(env.GatewayURL + "/sso/admin/?org=" + orgA); p.status != http.StatusForbidden {
		t.Errorf("B's configurator page for A: %d", p.status)
	}
	if status, _, _ := b.api(http.MethodPost, "/sso/admin/api/activate?org="+orgA, nil, csrfB); status != http.StatusForbidden {
		t.Errorf("B activates with ?org=A: %d", status)
	}
	if status, _, _ := b.api(http.MethodDelete, "/sso/admin/api/domains/"+orgA+".test", nil, csrfB); status != http.StatusNotFound {
		t.Errorf("B removes A's domain: %d", status)
	}
	if status, _, _ := b.api(http.MethodPost, "/sso/admin/api/domains/"+orgA+".test/verify", nil, csrfB); status != http.StatusNotFound {
		t.Errorf("B verifies A's domain: %d", status)
	}
	if status, _, _ := b.api(http.MethodPut, "/sso/admin/api/backup-login", map[string]any{"user": aOwner}, csrfB); status != http.StatusNotFound {
		t.Errorf("B designates A's owner: %d", status)
	}
	if status, _, _ := b.api(http.MethodDelete, "/sso/admin/api/local-users/"+aOwner, nil, csrfB); status != http.StatusNotFound {
		t.Errorf("B removes A's owner: %d", status)
	}
	// A's CSRF token is worthless with B's session.
	if status, _, _ := b.api(http.MethodPut, "/sso/admin/api/steps/register", map[string]any{"done": true}, csrfA); status != http.StatusForbidden {
		t.Errorf("B with A's CSRF token: %d", status)
	}
	_, v := steps(t, b)
	if v["id"] != orgB || len(v["domains"].([]any)) != 0 {
		t.Errorf("B's view: %v %v", v["id"], v["domains"])
	}
	_, v = steps(t, a)
	if len(v["domains"].([]any)) != 1 {
		t.Errorf("A's domain changed: %v", v["domains"])
	}
}

// TestOrgAdminAPIRefusals: no session, a non-admin, CSRF and content type.
func TestOrgAdminAPIRefusals(t *testing.T) {
	anon := newBrowser(t)
	if status, _, _ := anon.api(http.MethodGet, "/sso/admin/api", nil, ""); status != http.StatusUnauthorized {
		t.Errorf("anonymous API: %d", status)
	}
	if status, _, _ := anon.api(http.MethodPost, "/sso/admin/api/activate", nil, "x"); status != http.StatusUnauthorized {
		t.Errorf("anonymous activate: %d", status)
	}
	if p := anon.get(env.GatewayURL + "/sso/admin/"); p.status != http.StatusFound || !strings.HasPrefix(p.location, "/sso/login") {
		t.Errorf("anonymous page: %d %q", p.status, p.location)
	}

	org := uniqueOrg("cfg-ref")
	b, _ := orgAdminBrowser(t, org, org+".test", "127.0.0.43")
	csrf := b.csrfToken()
	put := func(hdr map[string]string, body string) int {
		req, _ := http.NewRequest(http.MethodPut, env.GatewayURL+"/sso/admin/api/steps/register", strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return b.do(req).status
	}
	if s := put(map[string]string{"Content-Type": "application/json"}, `{"done":true}`); s != http.StatusForbidden {
		t.Errorf("no CSRF header: %d", s)
	}
	if s := put(map[string]string{"Content-Type": "application/json", "X-CSRF-Token": csrf + "x"}, `{"done":true}`); s != http.StatusForbidden {
		t.Errorf("wrong CSRF token: %d", s)
	}
	if s := put(map[string]string{"Content-Type": "text/plain", "X-CSRF-Token": csrf}, `{"done":true}`); s != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain body: %d", s)
	}
	if s := put(map[string]string{"Content-Type": "application/json", "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, `{"done":true}`); s != http.StatusForbidden {
		t.Errorf("cross-site request: %d", s)
	}
	if st, _ := steps(t, b); st["register"] {
		t.Errorf("a refused request changed the step")
	}
	if s := put(map[string]string{"Content-Type": "application/json", "X-CSRF-Token": csrf}, `{"done":true}`); s != http.StatusOK {
		t.Errorf("good request: %d", s)
	}

	// A local account with role user is no admin.
	status, link, _ := b.api(http.MethodPost, "/sso/admin/api/local-users", map[string]any{"email": "user@" + org + ".test", "role": "user"}, csrf)
	if status != http.StatusCreated {
		t.Fatalf("invite: %d %v", status, link)
	}
	u := newBrowserFrom(t, "127.0.0.44")
	u.setPassword(link["set_password_url"].(string), "plain user passphrase 7")
	if p := u.backupSignIn("user@"+org+".test", "plain user passphrase 7", org); p.status != http.StatusSeeOther {
		t.Fatalf("user sign-in: %d", p.status)
	}
	if status, _, _ := u.api(http.MethodGet, "/sso/admin/api", nil, ""); status != http.StatusForbidden {
		t.Errorf("non-admin API: %d", status)
	}
	if p := u.get(env.GatewayURL + "/sso/admin/"); p.status != http.StatusForbidden {
		t.Errorf("non-admin page: %d", p.status)
	}
}

// TestConfiguratorPage drives the HTML page without a browser: Start
// configuring, a refused domain with its error next to the field, PRG
// after success, the SCIM token shown once, CSRF refusal, and a SAML admin
// of the demo org reaching the page.
func TestConfiguratorPage(t *testing.T) {
	org := uniqueOrg("cfg-page")
	b, _ := orgAdminBrowser(t, org, org+".test", "127.0.0.45")
	admin := env.GatewayURL + "/sso/admin/"

	if p := b.get(env.GatewayURL + "/sso/admin"); p.status != http.StatusMovedPermanently || p.location != "/sso/admin/" {
		t.Errorf("/sso/admin: %d %q", p.status, p.location)
	}
	p := b.get(admin)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Start configuring") || strings.Contains(p.body, "step-domains") {
		t.Fatalf("first visit: %d\n%s", p.status, p.body)
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "script-src 'unsafe") {
		t.Errorf("CSP: %q", csp)
	}
	f := formByAction(t, p.body, "/sso/admin/start")
	if p := b.post(env.GatewayURL+"/sso/admin/start", url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("start without CSRF token: %d", p.status)
	}
	if p := b.post(env.GatewayURL+"/sso/admin/start", f); p.status != http.StatusSeeOther {
		t.Fatalf("start: %d\n%s", p.status, p.body)
	}
	p = b.get(admin + "?done=started")
	for _, want := range []string{"Configuration started", `id="step-domains"`, `id="step-backup"`, "Configure organization’s domains", "Configure backup login", "1 of 7 steps done", "Service Provider Entity ID", "/sso/saml/" + org + "/acs", "/sso/scim/" + org + "/v2"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "Activate Integration</button>") {
		t.Errorf("Activate shown with grey steps")
	}

	f = formByAction(t, p.body, "/sso/admin/domains")
	f.Set("domain", "co.uk")
	// A refusal redirects too (a reload must not post again), to the
	// page with the error next to the field and the input kept, once.
	p = b.post(env.GatewayURL+"/sso/admin/domains", f)
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/sso/admin/?r=") {
		t.Fatalf("refused domain: %d %q", p.status, p.location)
	}
	refused := resolve(admin, p.location)
	p = b.get(refused)
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="domain-name-err"`) || !strings.Contains(p.body, `value="co.uk"`) || !strings.Contains(p.body, `aria-invalid="true"`) || !strings.Contains(p.body, "autofocus") {
		t.Errorf("refused domain's page: %d\n%s", p.status, p.body)
	}
	if p := b.get(refused); strings.Contains(p.body, `id="domain-name-err"`) || !strings.Contains(p.body, "This page was reloaded") {
		t.Errorf("the refusal is shown again on reload")
	}
	f.Set("domain", org+".test")
	p = b.post(env.GatewayURL+"/sso/admin/domains", f)
	if p.status != http.StatusSeeOther || !strings.Contains(p.location, "done=domain-added") {
		t.Fatalf("add domain: %d %q\n%s", p.status, p.location, p.body)
	}
	p = b.get(resolve(admin, p.location))
	if !strings.Contains(p.body, "ssogate-verification=") || !strings.Contains(p.body, "Not verified") {
		t.Errorf("domain row lacks the TXT record or status")
	}

	// The token: generated by the post, shown by the page its redirect
	// leads to, once; reloading that page neither shows nor rotates it.
	p = b.post(env.GatewayURL+"/sso/admin/scim-token", formByAction(t, p.body, "/sso/admin/scim-token"))
	if p.status != http.StatusSeeOther || strings.Contains(p.location, "token=") || strings.Contains(p.body, "Bearer") {
		t.Fatalf("SCIM token post: %d %q", p.status, p.location)
	}
	shown := resolve(admin, p.location)
	p = b.get(shown)
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="scim-token"`) || !strings.Contains(p.body, "shown only this once") {
		t.Fatalf("SCIM token: %d\n%s", p.status, p.body)
	}
	created := adminJSON(t, http.MethodGet, "/orgs/"+org, nil)["scim_token_created"]
	if p := b.get(shown); strings.Contains(p.body, `id="scim-token"`) || !strings.Contains(p.body, "Rotate token") {
		t.Errorf("token shown again on reload, or no Rotate button")
	}
	if again := adminJSON(t, http.MethodGet, "/orgs/"+org, nil)["scim_token_created"]; again != created {
		t.Errorf("reloading rotated the token: %v, then %v", created, again)
	}
	if p := b.get(admin); !strings.Contains(p.body, "your IdP’s provisioning stops") && !strings.Contains(p.body, "provisioning stops until you paste the new token") {
		t.Errorf("Rotate token does not say what will happen")
	}

	// A configurator of the demo org (its IdP puts Alice in the group the
	// demo chose) gets their own org's page, from its real state: active,
	// with Deactivate, not "Before you start".
	s := newBrowser(t)
	s.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	if p := s.get(admin); p.status != http.StatusOK || !strings.Contains(p.body, "Example Inc.") ||
		strings.Contains(p.body, "Before you start") || !strings.Contains(p.body, "Integration active") || !strings.Contains(p.body, "/admin/deactivate") {
		t.Errorf("SAML configurator's page: %d\n%s", p.status, p.body)
	}
}
