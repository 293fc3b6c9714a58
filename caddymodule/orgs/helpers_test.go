package orgs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap/zaptest"

	"github.com/ssogate/ssogate/store"
)

const testBase = "https://gw.example.net/sso/saml/"

// env is a Service on a real store in a temporary directory, with its admin
// API served by a real HTTP server and a real DNS server on loopback for
// domain verification.
type env struct {
	t     *testing.T
	store *store.Store
	svc   *Service
	srv   *httptest.Server
	dns   *fakeDNS
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc := New(st, func(id string) SPURLs {
		return SPURLs{EntityID: testBase + id, ACSURL: testBase + id + "/acs", MetadataURL: testBase + id + "/metadata"}
	}, zaptest.NewLogger(t))
	d := startDNS(t)
	svc.Resolver = NewResolver(d.addr)
	srv := httptest.NewServer(svc.AdminHandler("/sso"))
	t.Cleanup(srv.Close)
	return &env{t: t, store: st, svc: svc, srv: srv, dns: d}
}

// response is a decoded API response.
type response struct {
	status int
	header http.Header
	raw    []byte
}

func (r response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.raw, &m); err != nil {
		t.Fatalf("response %q is not a JSON object: %v", r.raw, err)
	}
	return m
}

func (r response) array(t *testing.T) []any {
	t.Helper()
	var a []any
	if err := json.Unmarshal(r.raw, &a); err != nil {
		t.Fatalf("response %q is not a JSON array: %v", r.raw, err)
	}
	return a
}

// call sends a request to the admin API. body is sent as is when it is a
// string, JSON-encoded otherwise, and not at all when nil.
func (e *env) call(method, path string, body any) response {
	e.t.Helper()
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rdr = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rdr)
	if err != nil {
		e.t.Fatal(err)
	}
	if rdr != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, raw: raw}
}

// must calls the API and requires the given status.
func (e *env) must(status int, method, path string, body any) response {
	e.t.Helper()
	r := e.call(method, path, body)
	if r.status != status {
		e.t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, r.status, status, r.raw)
	}
	return r
}

// snapshot captures everything an admin API request could change, to
// prove a refused request changed nothing.
func (e *env) snapshot() string {
	e.t.Helper()
	orgs, err := e.store.ListOrgs()
	if err != nil {
		e.t.Fatal(err)
	}
	state := map[string]any{"orgs": orgs}
	global, err := e.store.ListAudit("", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	state["audit"] = global
	for _, o := range orgs {
		domains, err := e.store.ListDomains(o.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		events, err := e.store.ListAudit(o.ID, 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		state["domains/"+o.ID] = domains
		state["audit/"+o.ID] = events
	}
	j, err := json.Marshal(state)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(j)
}

// createOrg creates an organization through the API.
func (e *env) createOrg(id string) {
	e.t.Helper()
	e.must(http.StatusCreated, "POST", "/sso/orgs", map[string]string{
		"id": id, "name": "Org " + id, "owner_email": "owner@" + id + ".example.com",
	})
}

// readyOrg creates an organization with everything activation needs.
func (e *env) readyOrg(id, domain string) {
	e.t.Helper()
	e.createOrg(id)
	e.must(http.StatusCreated, "POST", "/sso/orgs/"+id+"/domains", map[string]string{"name": domain})
	e.must(http.StatusOK, "POST", "/sso/orgs/"+id+"/domains/"+domain+"/verify", map[string]bool{"force": true})
	e.must(http.StatusOK, "PUT", "/sso/orgs/"+id+"/idp", map[string]any{
		"entity_id":    "https://idp.example.org/" + id,
		"sso_url":      "https://idp.example.org/" + id + "/sso",
		"certificates": []string{newCertPEM(e.t, ecKey(e.t), time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))},
	})
	e.must(http.StatusOK, "PUT", "/sso/orgs/"+id+"/admin-group", map[string]string{"name": "Admins", "id": "00g1"})
	e.must(http.StatusCreated, "POST", "/sso/orgs/"+id+"/scim-token", nil)
	for _, step := range []string{StepRegister, StepSAML, StepSCIM, StepUsers} {
		e.must(http.StatusOK, "PUT", "/sso/orgs/"+id+"/steps/"+step, map[string]bool{"done": true})
	}
	e.signedInOnce(id, "owner@"+id+".example.com")
}

// signedInOnce gives a local account a password and a first sign-in, as
// the set-password link and the sign-in page would, which makes it
// eligible as the backup login.
func (e *env) signedInOnce(orgID, email string) *store.User {
	e.t.Helper()
	u, err := e.store.UserByUserName(orgID, email)
	if err != nil {
		e.t.Fatalf("user %s: %v", email, err)
	}
	u, err = e.store.UpdateUser(orgID, u.ID, func(u *store.User) error {
		u.PasswordHash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"
		u.LastLogin = time.Now().UTC()
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func ecKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCert(t *testing.T, key crypto.Signer, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Test IdP signing"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("creating certificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func newCertPEM(t *testing.T, key crypto.Signer, notBefore, notAfter time.Time) string {
	t.Helper()
	return certPEM(newCert(t, key, notBefore, notAfter))
}

// fakeDNS is an authoritative DNS server on loopback answering TXT
// queries from a table the test controls.
type fakeDNS struct {
	addr     string
	mu       sync.Mutex
	txt      map[string][][]string // fqdn → records, each a list of strings
	servfail map[string]bool       // fqdn → answer SERVFAIL
	queries  int
}

func startDNS(t *testing.T) *fakeDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDNS{addr: pc.LocalAddr().String(), txt: map[string][][]string{}, servfail: map[string]bool{}}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: f, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return f
}

// set publishes TXT records at name (without the trailing dot).
func (f *fakeDNS) set(name string, records ...[]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txt[dns.Fqdn(name)] = records
}

// remove deletes name, which then does not exist (NXDOMAIN).
func (f *fakeDNS) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.txt, dns.Fqdn(name))
}

// failing makes queries for name answer SERVFAIL (or stop doing so), as
// a broken authoritative server or resolver does.
func (f *fakeDNS) failing(name string, fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servfail[dns.Fqdn(name)] = fail
}

// count returns how many queries the server answered.
func (f *fakeDNS) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries
}

func (f *fakeDNS) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(q.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	f.queries++
	qn := strings.ToLower(q.Question[0].Name)
	records, ok := f.txt[qn]
	switch {
	case f.servfail[qn]:
		m.Rcode = dns.RcodeServerFailure
	case !ok:
		m.Rcode = dns.RcodeNameError
	case q.Question[0].Qtype == dns.TypeTXT:
		for _, r := range records {
			m.Answer = append(m.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: qn, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: r,
			})
		}
	}
	_ = w.WriteMsg(m)
}
