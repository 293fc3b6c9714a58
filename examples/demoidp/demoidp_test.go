package demoidp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
	"golang.org/x/net/html"
)

const (
	aliceEmail    = "alice@example.com"
	alicePassword = "correct horse battery staple"
	aliceOID      = "00u-alice-0001"
)

var aliceGroups = []string{"Business Account Admins", "Engineering"}

func testUsers() []User {
	return []User{
		{
			Email: aliceEmail, Password: alicePassword, ObjectID: aliceOID,
			GivenName: "Alice", FamilyName: "Liddell", DisplayName: "Alice L.",
			Groups: aliceGroups,
		},
		{Email: "Bob@Example.com", Password: "hunter2", GivenName: "Bob", FamilyName: "Builder"},
	}
}

// env is an IdP and a crewjam service provider, each behind its own
// httptest server, registered with each other.
type env struct {
	idp    *IdP
	idpSrv *httptest.Server
	sp     *testSP
}

func newEnv(t *testing.T) *env {
	t.Helper()
	idpSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	idp, err := New(Config{BaseURL: "http://" + idpSrv.Listener.Addr().String(), Users: testUsers()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	idpSrv.Config.Handler = idp.Handler()
	idpSrv.Start()
	t.Cleanup(idpSrv.Close)

	sp := newTestSP(t, idpSrv.URL+"/metadata")
	md, err := xml.Marshal(sp.sp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	if err := idp.RegisterServiceProvider("sp", md); err != nil {
		t.Fatalf("RegisterServiceProvider: %v", err)
	}
	return &env{idp: idp, idpSrv: idpSrv, sp: sp}
}

// testSP is a plain crewjam saml.ServiceProvider served by httptest:
// /start sends the browser to the IdP, /saml/acs validates the response
// with ParseXMLResponse and answers with what it asserted, as JSON.
type testSP struct {
	sp  *saml.ServiceProvider
	srv *httptest.Server

	mu         sync.Mutex
	requestIDs []string
}

// acsResult is what the test SP's ACS reports about an accepted response.
type acsResult struct {
	NameID       string
	NameIDFormat string
	InResponseTo string
	RelayState   string
	Attributes   map[string][]string
}

func newTestSP(t *testing.T, idpMetadataURL string) *testSP {
	t.Helper()
	key, cert := testKeyPair(t)
	resp, err := http.Get(idpMetadataURL)
	if err != nil {
		t.Fatalf("fetching IdP metadata: %v", err)
	}
	defer resp.Body.Close()
	var idpMetadata saml.EntityDescriptor
	if err := xml.NewDecoder(resp.Body).Decode(&idpMetadata); err != nil {
		t.Fatalf("decoding IdP metadata: %v", err)
	}

	s := &testSP{}
	mux := http.NewServeMux()
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	base, _ := url.Parse(s.srv.URL)
	s.sp = &saml.ServiceProvider{
		EntityID:    s.srv.URL + "/saml/metadata",
		Key:         key,
		Certificate: cert,
		MetadataURL: *base.JoinPath("/saml/metadata"),
		AcsURL:      *base.JoinPath("/saml/acs"),
		IDPMetadata: &idpMetadata,
	}
	mux.HandleFunc("GET /start", func(w http.ResponseWriter, r *http.Request) {
		u, err := s.authnRequestURL(r.URL.Query().Get("relay"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, u, http.StatusFound)
	})
	mux.HandleFunc("POST /saml/acs", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.acs(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
	return s
}

// authnRequestURL makes an HTTP-Redirect AuthnRequest and remembers its ID.
func (s *testSP) authnRequestURL(relayState string) (string, error) {
	req, err := s.sp.MakeAuthenticationRequest(s.sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return "", err
	}
	u, err := req.Redirect(relayState, s.sp)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.requestIDs = append(s.requestIDs, req.ID)
	s.mu.Unlock()
	return u.String(), nil
}

func (s *testSP) acs(r *http.Request) (*acsResult, error) {
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(r.PostForm.Get("SAMLResponse"))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	ids := slices.Clone(s.requestIDs)
	s.mu.Unlock()
	assertion, err := s.sp.ParseXMLResponse(raw, ids, s.sp.AcsURL)
	if err != nil {
		var ire *saml.InvalidResponseError
		if errors.As(err, &ire) {
			return nil, fmt.Errorf("refused: %w", ire.PrivateErr)
		}
		return nil, fmt.Errorf("refused: %w", err)
	}
	res := &acsResult{RelayState: r.PostForm.Get("RelayState"), Attributes: map[string][]string{}}
	if assertion.Subject != nil && assertion.Subject.NameID != nil {
		res.NameID = assertion.Subject.NameID.Value
		res.NameIDFormat = assertion.Subject.NameID.Format
	}
	if assertion.Subject != nil && len(assertion.Subject.SubjectConfirmations) > 0 {
		res.InResponseTo = assertion.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo
	}
	for _, stmt := range assertion.AttributeStatements {
		for _, attr := range stmt.Attributes {
			for _, v := range attr.Values {
				res.Attributes[attr.Name] = append(res.Attributes[attr.Name], v.Value)
			}
		}
	}
	return res, nil
}

func testKeyPair(t *testing.T) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := selfSignedCertificate(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// browser is an http.Client with a cookie jar that does not follow
// redirects by itself, so each step of the flow is visible.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, client: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// page is a fetched HTML page and its first form.
type page struct {
	status int
	body   string
	url    *url.URL
	action string     // absolute URL the form posts to
	fields url.Values // the form's named inputs with their values
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	p := &page{status: resp.StatusCode, body: string(body), url: resp.Request.URL}
	p.parseForm(b.t)
	return p
}

func (b *browser) get(u string) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// submit posts the page's form with its fields, overridden by extra.
func (b *browser) submit(p *page, extra url.Values) *page {
	b.t.Helper()
	if p.action == "" {
		b.t.Fatalf("no form on page %s (HTTP %d): %s", p.url, p.status, p.body)
	}
	form := url.Values{}
	for k, v := range p.fields {
		form[k] = slices.Clone(v)
	}
	for k, v := range extra {
		form[k] = v
	}
	return b.post(p.action, form)
}

func (p *page) parseForm(t *testing.T) {
	doc, err := html.Parse(strings.NewReader(p.body))
	if err != nil {
		t.Fatalf("parsing HTML: %v", err)
	}
	attr := func(n *html.Node, name string) (string, bool) {
		for _, a := range n.Attr {
			if a.Key == name {
				return a.Val, true
			}
		}
		return "", false
	}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "form":
			if p.action != "" {
				return // only the first form
			}
			action, _ := attr(n, "action")
			u, err := p.url.Parse(action) // no action: the page's own URL
			if err != nil {
				t.Fatalf("form action %q: %v", action, err)
			}
			p.action = u.String()
			p.fields = url.Values{}
		case "input":
			if p.fields == nil {
				continue
			}
			if name, ok := attr(n, "name"); ok {
				v, _ := attr(n, "value")
				p.fields.Add(name, v)
			}
		}
	}
}

func (p *page) acsResult(t *testing.T) *acsResult {
	t.Helper()
	if p.status != http.StatusOK {
		t.Fatalf("ACS refused the response (HTTP %d): %s", p.status, p.body)
	}
	var res acsResult
	if err := json.Unmarshal([]byte(p.body), &res); err != nil {
		t.Fatalf("ACS answer %q: %v", p.body, err)
	}
	return &res
}

func checkAlice(t *testing.T, res *acsResult) {
	t.Helper()
	if res.NameID != aliceEmail || res.NameIDFormat != string(saml.EmailAddressNameIDFormat) {
		t.Errorf("NameID = %q (%s), want %q (emailAddress)", res.NameID, res.NameIDFormat, aliceEmail)
	}
	want := map[string][]string{
		AttrObjectID:    {aliceOID},
		AttrName:        {aliceEmail},
		AttrDisplayName: {"Alice L."},
		AttrGroups:      aliceGroups,
		AttrFirstName:   {"Alice"},
		AttrLastName:    {"Liddell"},
	}
	for name, values := range want {
		if got := res.Attributes[name]; !slices.Equal(got, values) {
			t.Errorf("attribute %s = %q, want %q", name, got, values)
		}
	}
	if len(res.Attributes) != len(want) {
		t.Errorf("attributes = %v, want exactly %v", res.Attributes, want)
	}
}

func TestBrowserFlow(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t)
	// Another application's cookie on the IdP's host (cookies ignore ports)
	// must neither confuse the IdP nor be overwritten by it.
	idpURL, _ := url.Parse(e.idpSrv.URL)
	b.client.Jar.SetCookies(idpURL, []*http.Cookie{{Name: "session", Value: "not-the-idps"}})

	login := b.get(e.sp.srv.URL + "/start?relay=%2Fwanted")
	if login.status != http.StatusOK || !strings.HasPrefix(login.url.String(), e.idp.SSOURL()+"?") {
		t.Fatalf("expected the IdP login form at %s, got HTTP %d at %s", e.idp.SSOURL(), login.status, login.url)
	}
	if !login.fields.Has("user") || !login.fields.Has("password") || login.fields.Get("SAMLRequest") == "" {
		t.Fatalf("login form fields = %v", login.fields)
	}

	// The email is matched case-insensitively.
	posted := b.submit(login, url.Values{"user": {"  ALICE@example.com "}, "password": {alicePassword}})
	if posted.action != e.sp.sp.AcsURL.String() || posted.fields.Get("SAMLResponse") == "" {
		t.Fatalf("expected an auto-submit form to the ACS, got HTTP %d: %s", posted.status, posted.body)
	}
	checkEncryptedAndSigned(t, posted.fields.Get("SAMLResponse"))

	res := b.submit(posted, nil).acsResult(t)
	checkAlice(t, res)
	if res.RelayState != "/wanted" {
		t.Errorf("RelayState = %q, want /wanted", res.RelayState)
	}
	if res.InResponseTo == "" {
		t.Error("the assertion answers no request")
	}

	cookies := map[string]string{}
	for _, c := range b.client.Jar.Cookies(idpURL) {
		cookies[c.Name] = c.Value
	}
	if cookies["session"] != "not-the-idps" || cookies[sessionCookieName] == "" {
		t.Errorf("cookies for the IdP host = %v, want the foreign one kept and %s set", cookies, sessionCookieName)
	}

	// The IdP session cookie now signs the browser in without the form.
	again := b.get(e.sp.srv.URL + "/start")
	if again.action != e.sp.sp.AcsURL.String() || again.fields.Get("SAMLResponse") == "" {
		t.Fatalf("second login: expected the response form directly, got HTTP %d: %s", again.status, again.body)
	}
	checkAlice(t, b.submit(again, nil).acsResult(t))
}

// checkEncryptedAndSigned checks that a response from the browser flow is
// signed and carries an encrypted assertion, as crewjam's IdP sends to an
// SP with an encryption key.
func checkEncryptedAndSigned(t *testing.T, samlResponse string) {
	t.Helper()
	doc := decodeResponse(t, samlResponse)
	root := doc.Root()
	if root.FindElement("./Signature") == nil {
		t.Error("the response is not signed")
	}
	if root.FindElement("./EncryptedAssertion") == nil {
		t.Error("the assertion is not encrypted")
	}
}

func decodeResponse(t *testing.T, samlResponse string) *etree.Document {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestUserWithoutOptionalFields(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t)
	login := b.get(e.sp.srv.URL + "/start")
	res := b.submit(b.submit(login, url.Values{"user": {"bob@example.com"}, "password": {"hunter2"}}), nil).acsResult(t)
	if res.NameID != "bob@example.com" {
		t.Errorf("NameID = %q", res.NameID)
	}
	if got := res.Attributes[AttrDisplayName]; !slices.Equal(got, []string{"Bob Builder"}) {
		t.Errorf("displayName = %q, want the default from given and family name", got)
	}
	if oid := res.Attributes[AttrObjectID]; len(oid) != 1 || len(oid[0]) != 36 {
		t.Errorf("objectidentifier = %q, want a generated UUID", oid)
	}
	if g, ok := res.Attributes[AttrGroups]; ok {
		t.Errorf("groups = %q, want no groups attribute for a user without groups", g)
	}
}

func TestWrongCredentialsRefused(t *testing.T) {
	e := newEnv(t)
	for _, creds := range []url.Values{
		{"user": {aliceEmail}, "password": {"wrong"}},
		{"user": {aliceEmail}, "password": {""}},
		{"user": {"mallory@example.com"}, "password": {alicePassword}},
	} {
		b := newBrowser(t)
		login := b.get(e.sp.srv.URL + "/start")
		again := b.submit(login, creds)
		if again.fields.Has("SAMLResponse") || !again.fields.Has("password") {
			t.Errorf("%v: expected the login form again, got HTTP %d: %s", creds, again.status, again.body)
		}
		if !strings.Contains(again.body, "Invalid username or password") {
			t.Errorf("%v: no error message on the login form", creds)
		}
	}
}

func TestIdPInitiatedLogin(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t)
	login := b.get(e.idpSrv.URL + "/login/sp")
	if !login.fields.Has("password") {
		t.Fatalf("expected a login form, got HTTP %d: %s", login.status, login.body)
	}
	posted := b.submit(login, url.Values{"user": {aliceEmail}, "password": {alicePassword}})
	if posted.action != e.sp.sp.AcsURL.String() {
		t.Fatalf("expected the response form, got HTTP %d: %s", posted.status, posted.body)
	}
	// crewjam refuses unsolicited responses unless allowed.
	if p := b.submit(posted, nil); p.status != http.StatusForbidden {
		t.Fatalf("unsolicited response accepted by default: HTTP %d %s", p.status, p.body)
	}
	e.sp.sp.AllowIDPInitiated = true
	res := b.submit(posted, nil).acsResult(t)
	checkAlice(t, res)
	if res.InResponseTo != "" {
		t.Errorf("InResponseTo = %q in an unsolicited response", res.InResponseTo)
	}
}

func TestRespond(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t)

	u, err := e.sp.authnRequestURL("rs")
	if err != nil {
		t.Fatal(err)
	}
	acsURL, form, err := e.idp.Respond(u, "Alice@Example.com", nil)
	if err != nil {
		t.Fatalf("Respond: %v", err)
	}
	if acsURL != e.sp.sp.AcsURL.String() {
		t.Errorf("acsURL = %q", acsURL)
	}
	checkEncryptedAndSigned(t, form.Get("SAMLResponse"))
	res := b.post(acsURL, form).acsResult(t)
	checkAlice(t, res)
	if res.RelayState != "rs" || res.InResponseTo == "" {
		t.Errorf("RelayState = %q, InResponseTo = %q", res.RelayState, res.InResponseTo)
	}
}

// TestRespondMutations checks that each mutation yields a response the SP
// refuses although it is validly signed, and that its control (no mutation)
// is accepted.
func TestRespondMutations(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t)
	past := time.Now().Add(-time.Hour)

	cases := map[string]RespondOptions{
		"audience": {Mutate: func(a *saml.Assertion) {
			a.Conditions.AudienceRestrictions[0].Audience.Value = "https://other.example/sp"
		}},
		"expired": {Mutate: func(a *saml.Assertion) {
			a.Conditions.NotBefore = past.Add(-time.Minute)
			a.Conditions.NotOnOrAfter = past
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotOnOrAfter = past
		}},
		"recipient": {Mutate: func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = "https://other.example/acs"
		}},
		"assertion issuer": {Mutate: func(a *saml.Assertion) {
			a.Issuer.Value = "https://evil.example/metadata"
		}},
		"in response to": {Mutate: func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo = "id-unknown"
		}},
		"destination": {MutateResponse: func(r *saml.Response) {
			r.Destination = "https://other.example/acs"
		}},
		"status": {MutateResponse: func(r *saml.Response) {
			r.Status.StatusCode.Value = saml.StatusRequester
		}},
		"unsigned":        {Signing: SignNothing},
		"unsigned, clear": {Signing: SignNothing, NoEncryption: true},
		"tampered": {NoEncryption: true, Tamper: func(resp *etree.Element) {
			for _, v := range resp.FindElements("//AttributeValue") {
				if v.Text() == aliceOID {
					v.SetText("00u-someone-else")
				}
			}
		}},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			u, err := e.sp.authnRequestURL("")
			if err != nil {
				t.Fatal(err)
			}
			acsURL, form, err := e.idp.RespondWith(u, aliceEmail, opts)
			if err != nil {
				t.Fatalf("RespondWith: %v", err)
			}
			p := b.post(acsURL, form)
			if p.status != http.StatusForbidden {
				t.Errorf("response accepted (HTTP %d): %s", p.status, p.body)
			}
			t.Logf("refused: %s", strings.TrimSpace(p.body))
			// Control: the same request answered without the mutation.
			acsURL, form, err = e.idp.Respond(u, aliceEmail, nil)
			if err != nil {
				t.Fatalf("Respond: %v", err)
			}
			checkAlice(t, b.post(acsURL, form).acsResult(t))
		})
	}
}

func TestRespondSigningVariants(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t)
	for name, opts := range map[string]RespondOptions{
		"assertion only":            {Signing: SignAssertionOnly},
		"response only":             {Signing: SignResponseOnly},
		"assertion only, clear":     {Signing: SignAssertionOnly, NoEncryption: true},
		"both, clear":               {NoEncryption: true},
		"other relay state":         {RelayState: ptr("/elsewhere")},
		"attribute set by SetAttr.": {Mutate: func(a *saml.Assertion) { SetAttribute(a, AttrGroups, "Other") }},
	} {
		t.Run(name, func(t *testing.T) {
			u, err := e.sp.authnRequestURL("/rs")
			if err != nil {
				t.Fatal(err)
			}
			acsURL, form, err := e.idp.RespondWith(u, aliceEmail, opts)
			if err != nil {
				t.Fatalf("RespondWith: %v", err)
			}
			doc := decodeResponse(t, form.Get("SAMLResponse"))
			signedResponse := doc.Root().FindElement("./Signature") != nil
			wantSignedResponse := opts.Signing == SignResponseAndAssertion || opts.Signing == SignResponseOnly
			if signedResponse != wantSignedResponse {
				t.Errorf("response signed = %v, want %v", signedResponse, wantSignedResponse)
			}
			if opts.NoEncryption {
				signedAssertion := doc.Root().FindElement("./Assertion/Signature") != nil
				if signedAssertion != (opts.Signing != SignResponseOnly) {
					t.Errorf("assertion signed = %v", signedAssertion)
				}
			}
			res := b.post(acsURL, form).acsResult(t)
			switch {
			case opts.RelayState != nil:
				if res.RelayState != *opts.RelayState {
					t.Errorf("RelayState = %q", res.RelayState)
				}
			case opts.Mutate != nil:
				if g := res.Attributes[AttrGroups]; !slices.Equal(g, []string{"Other"}) {
					t.Errorf("groups = %q", g)
				}
			default:
				checkAlice(t, res)
			}
		})
	}
}

func TestRespondSHA1(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t)
	u, err := e.sp.authnRequestURL("")
	if err != nil {
		t.Fatal(err)
	}
	acsURL, form, err := e.idp.RespondWith(u, aliceEmail, RespondOptions{SignatureMethod: dsig.RSASHA1SignatureMethod})
	if err != nil {
		t.Fatalf("RespondWith: %v", err)
	}
	if !strings.Contains(decodeResponse(t, form.Get("SAMLResponse")).Root().FindElement("./Signature/SignedInfo/SignatureMethod").SelectAttrValue("Algorithm", ""), "rsa-sha1") {
		t.Fatal("response not signed with RSA-SHA1")
	}
	// Valid apart from SHA-1: crewjam accepts it unless told otherwise.
	checkAlice(t, b.post(acsURL, form).acsResult(t))
	e.sp.sp.RejectSHA1Signatures = true
	if p := b.post(acsURL, form); p.status != http.StatusForbidden {
		t.Errorf("SHA-1 signed response accepted (HTTP %d): %s", p.status, p.body)
	}
}

func TestUnsolicited(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t)
	acsURL, form, err := e.idp.Unsolicited("sp", aliceEmail, nil)
	if err != nil {
		t.Fatalf("Unsolicited: %v", err)
	}
	if p := b.post(acsURL, form); p.status != http.StatusForbidden {
		t.Fatalf("unsolicited response accepted by default: HTTP %d", p.status)
	}
	e.sp.sp.AllowIDPInitiated = true
	res := b.post(acsURL, form).acsResult(t)
	checkAlice(t, res)
	if res.InResponseTo != "" {
		t.Errorf("InResponseTo = %q", res.InResponseTo)
	}
	if _, _, err := e.idp.Unsolicited("nobody", aliceEmail, nil); err == nil {
		t.Error("Unsolicited for an unregistered SP succeeded")
	}
}

func TestRespondErrors(t *testing.T) {
	e := newEnv(t)
	u, err := e.sp.authnRequestURL("")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.idp.Respond(u, "mallory@example.com", nil); err == nil {
		t.Error("Respond for an unknown user succeeded")
	}
	elsewhere := strings.Replace(u, e.idpSrv.URL, "http://idp.invalid", 1)
	if _, _, err := e.idp.Respond(elsewhere, aliceEmail, nil); err == nil {
		t.Error("Respond accepted a request sent to another URL")
	}
	if _, _, err := e.idp.Respond(e.idp.SSOURL()+"?SAMLRequest=garbage", aliceEmail, nil); err == nil {
		t.Error("Respond accepted a garbage request")
	}

	// A request from an SP the IdP does not know.
	other := newTestSP(t, e.idpSrv.URL+"/metadata")
	u2, err := other.authnRequestURL("")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.idp.Respond(u2, aliceEmail, nil); err == nil {
		t.Error("Respond answered an unregistered SP")
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.idp.EntityID())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md saml.EntityDescriptor
	if err := xml.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if md.EntityID != e.idp.EntityID() || e.idp.EntityID() != e.idpSrv.URL+"/metadata" {
		t.Errorf("entityID = %q, EntityID() = %q", md.EntityID, e.idp.EntityID())
	}
	var redirect string
	for _, ep := range md.IDPSSODescriptors[0].SingleSignOnServices {
		if ep.Binding == saml.HTTPRedirectBinding {
			redirect = ep.Location
		}
	}
	if redirect != e.idp.SSOURL() || redirect != e.idpSrv.URL+"/sso" {
		t.Errorf("HTTP-Redirect SSO = %q, SSOURL() = %q", redirect, e.idp.SSOURL())
	}

	block, _ := pem.Decode([]byte(e.idp.CertificatePEM()))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("CertificatePEM = %q", e.idp.CertificatePEM())
	}
	published := md.IDPSSODescriptors[0].KeyDescriptors[0].KeyInfo.X509Data.X509Certificates[0].Data
	if published != base64.StdEncoding.EncodeToString(block.Bytes) {
		t.Error("the metadata does not publish the certificate of CertificatePEM")
	}

	buf, err := e.idp.MetadataXML()
	if err != nil {
		t.Fatal(err)
	}
	var md2 saml.EntityDescriptor
	if err := xml.Unmarshal(buf, &md2); err != nil || md2.EntityID != md.EntityID {
		t.Errorf("MetadataXML: entityID %q, err %v", md2.EntityID, err)
	}
}

func TestAdminAPIDisabled(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/users/", ""},
		{http.MethodPut, "/users/mallory@example.com", `{"name":"mallory","password":"x"}`},
		{http.MethodGet, "/services/", ""},
		{http.MethodDelete, "/services/sp", ""},
		{http.MethodGet, "/sessions/", ""},
		{http.MethodPut, "/shortcuts/x", `{}`},
	} {
		req, err := http.NewRequest(tc.method, e.idpSrv.URL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s: HTTP %d, want 403", tc.method, tc.path, resp.StatusCode)
		}
	}
	// The SP is still registered, so DELETE did nothing.
	if _, _, err := e.idp.Unsolicited("sp", aliceEmail, nil); err != nil {
		t.Errorf("after the refused DELETE: %v", err)
	}
}

func TestBaseURLWithPath(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	idp, err := New(Config{BaseURL: "http://" + srv.Listener.Addr().String() + "/idp/", Users: testUsers()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = idp.Handler()
	srv.Start()
	defer srv.Close()
	if idp.EntityID() != srv.URL+"/idp/metadata" || idp.SSOURL() != srv.URL+"/idp/sso" {
		t.Fatalf("EntityID %q, SSOURL %q", idp.EntityID(), idp.SSOURL())
	}
	resp, err := http.Get(idp.EntityID())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: HTTP %d", idp.EntityID(), resp.StatusCode)
	}
}

func TestConfiguredKey(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	idp, err := New(Config{BaseURL: "http://127.0.0.1:1", Users: testUsers(), Key: ecKey})
	if err != nil {
		t.Fatalf("ECDSA key: %v", err)
	}
	if !idp.Certificate().PublicKey.(*ecdsa.PublicKey).Equal(&ecKey.PublicKey) {
		t.Error("the generated certificate is not for the configured key")
	}

	rsaKey, cert := testKeyPair(t)
	idp, err = New(Config{BaseURL: "http://127.0.0.1:1", Users: testUsers(), Key: rsaKey, Certificate: cert})
	if err != nil {
		t.Fatalf("RSA key and certificate: %v", err)
	}
	if !idp.Certificate().Equal(cert) {
		t.Error("the configured certificate is not used")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := func() Config { return Config{BaseURL: "http://127.0.0.1:8081", Users: testUsers()} }
	smallKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	keyA, _ := testKeyPair(t)
	_, certB := testKeyPair(t)

	cases := map[string]func(*Config){
		"empty base URL":     func(c *Config) { c.BaseURL = "" },
		"relative base URL":  func(c *Config) { c.BaseURL = "/idp" },
		"ftp base URL":       func(c *Config) { c.BaseURL = "ftp://127.0.0.1" },
		"base URL query":     func(c *Config) { c.BaseURL = "http://127.0.0.1?x=1" },
		"no users":           func(c *Config) { c.Users = nil },
		"bad email":          func(c *Config) { c.Users[0].Email = "alice" },
		"email with name":    func(c *Config) { c.Users[0].Email = "Alice <alice@example.com>" },
		"email with slash":   func(c *Config) { c.Users[0].Email = "a/b@example.com" },
		"duplicate email":    func(c *Config) { c.Users[1].Email = " ALICE@example.com" },
		"empty password":     func(c *Config) { c.Users[0].Password = "" },
		"long password":      func(c *Config) { c.Users[0].Password = strings.Repeat("x", 73) },
		"duplicate objectID": func(c *Config) { c.Users[1].ObjectID = aliceOID },
		"small RSA key":      func(c *Config) { c.Key = smallKey },
		"foreign cert":       func(c *Config) { c.Key, c.Certificate = keyA, certB },
		"cert without key":   func(c *Config) { c.Certificate = certB },
	}
	for name, mutate := range cases {
		cfg := good()
		mutate(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := New(good()); err != nil {
		t.Fatalf("good config: %v", err)
	}
}

func TestRegisterServiceProviderRefusesBadInput(t *testing.T) {
	idp, err := New(Config{BaseURL: "http://127.0.0.1:1", Users: testUsers()})
	if err != nil {
		t.Fatal(err)
	}
	for name, md := range map[string][]byte{
		"../x": []byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>`),
		"":     []byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>`),
		"ok":   []byte(`not xml`),
		"ok2":  []byte(`<!DOCTYPE x [<!ENTITY e "e">]><EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&e;"/>`),
	} {
		if err := idp.RegisterServiceProvider(name, md); err == nil {
			t.Errorf("RegisterServiceProvider(%q, %q) succeeded", name, md)
		}
	}
}

func TestSetAttribute(t *testing.T) {
	a := &saml.Assertion{}
	SetAttribute(a, "x") // removing from nothing adds nothing
	if len(a.AttributeStatements) != 0 {
		t.Fatalf("statements = %v", a.AttributeStatements)
	}
	SetAttribute(a, AttrName, "a@example.com")
	SetAttribute(a, AttrGroups, "g1", "g2")
	SetAttribute(a, AttrName, "b@example.com")
	SetAttribute(a, AttrGroups)
	attrs := a.AttributeStatements[0].Attributes
	if len(attrs) != 1 || attrs[0].Name != AttrName || attrs[0].Values[0].Value != "b@example.com" || attrs[0].NameFormat != NameFormatUnspecified {
		t.Errorf("attributes = %+v", attrs)
	}
}

func ptr[T any](v T) *T { return &v }
