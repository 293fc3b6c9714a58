package samlsp

import (
	"bytes"
	"compress/flate"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"

	"errors"
	"fmt"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/ssogate/ssogate/store"
)

const (
	sloIdPEntity = "https://idp.example.net/metadata"
	sloIdPURL    = "https://idp.example.net/slo"
)

// sloFixture is an org whose IdP has a single logout endpoint, our SP for
// it, and "the IdP": a crewjam SP turned around, with the IdP's key, that
// sends and checks logout messages as the org's IdP would.
type sloFixture struct {
	p    *Provider
	slo  SLO
	idp  *saml.ServiceProvider
	spID string
}

func newSLOFixture(t *testing.T) *sloFixture {
	t.Helper()
	spKey, spCert := newSPKeyPair(t)
	idpKey, idpCert := newSPKeyPair(t)
	urls := spURLs(testOrgID)
	org := &store.Org{ID: testOrgID, State: store.OrgActive}
	org.IdP = store.IdPSettings{EntityID: sloIdPEntity, SSOURL: "https://idp.example.net/sso", SLOURL: sloIdPURL,
		Certificates: []string{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idpCert.Raw}))}}
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { _ = st.Close() })
	p, err := New(Config{Org: org, URLs: urls, Key: spKey, Certificate: spCert, Replay: NewReplayCache(st, testOrgID)})
	if err != nil {
		t.Fatal(err)
	}
	slo := SLO{SPURL: urls.EntityID + "/slo", IdPURL: sloIdPURL}
	return &sloFixture{p: p, slo: slo, spID: urls.EntityID, idp: mirrorIdP(idpKey, idpCert, urls.EntityID, slo.SPURL, spCert)}
}

// mirrorIdP is the IdP side: it issues as sloIdPEntity, sends to the SP's
// SLO URL, and checks what the SP sends with the SP's certificate.
func mirrorIdP(key *rsa.PrivateKey, cert *x509.Certificate, spEntity, spSLO string, spCert *x509.Certificate) *saml.ServiceProvider {
	slo, _ := url.Parse(sloIdPURL)
	return &saml.ServiceProvider{
		EntityID: sloIdPEntity, Key: key, Certificate: cert, SloURL: *slo,
		LogoutSignatureMethod: dsig.RSASHA256SignatureMethod,
		IDPMetadata: &saml.EntityDescriptor{EntityID: spEntity, IDPSSODescriptors: []saml.IDPSSODescriptor{{
			SSODescriptor: saml.SSODescriptor{
				RoleDescriptor: saml.RoleDescriptor{KeyDescriptors: []saml.KeyDescriptor{{Use: "signing",
					KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{X509Certificates: []saml.X509Certificate{
						{Data: base64.StdEncoding.EncodeToString(spCert.Raw)}}}}}}},
				SingleLogoutServices: []saml.Endpoint{{Binding: saml.HTTPRedirectBinding, Location: spSLO}},
			},
		}}},
	}
}

// TestSPInitiatedLogoutRoundTrip: our LogoutRequest is signed and verifies
// at the IdP with our certificate; the IdP's signed answer to it is
// accepted, and only as the answer to that request.
func TestSPInitiatedLogoutRoundTrip(t *testing.T) {
	f := newSLOFixture(t)
	id, u, err := f.p.LogoutRequest(f.slo, aliceEmail, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.String(), sloIdPURL+"?") || u.Query().Get("Signature") == "" || !strings.Contains(u.Query().Get("SigAlg"), "rsa-sha256") {
		t.Fatalf("LogoutRequest URL %s", u)
	}
	req, err := f.idp.ValidateLogoutRequest(httptest.NewRequest("GET", u.String(), nil))
	if err != nil {
		t.Fatalf("the IdP refuses our LogoutRequest: %v", privateErr(err))
	}
	if req.ID != id || req.NameID == nil || req.NameID.Value != aliceEmail {
		t.Fatalf("LogoutRequest %+v", req)
	}

	answer, err := f.idp.MakeRedirectLogoutResponse(id, "")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", answer.String(), nil)
	if err := f.p.ParseLogoutResponse(f.slo, r, []string{"id-of-another-request"}); err == nil {
		t.Error("a LogoutResponse to another request was accepted")
	}
	if err := f.p.ParseLogoutResponse(f.slo, r, []string{id}); err != nil {
		t.Fatalf("the IdP's answer is refused: %v", err)
	}
}

// TestIdPInitiatedLogoutValidatedLikeResponses: a signed LogoutRequest
// from the org's IdP names the user; unsigned, foreign-signed, replayed,
// misaddressed or oversized ones are refused.
func TestIdPInitiatedLogoutValidatedLikeResponses(t *testing.T) {
	f := newSLOFixture(t)
	u, err := f.idp.MakeRedirectLogoutRequest(aliceEmail, "relay")
	if err != nil {
		t.Fatal(err)
	}
	good := u.String()
	l, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", good, nil))
	if err != nil {
		t.Fatalf("valid LogoutRequest refused: %v", err)
	}
	if l.NameID != aliceEmail || l.RequestID == "" {
		t.Fatalf("logout %+v", l)
	}
	back, err := f.p.LogoutResponse(f.slo, l.RequestID, "relay")
	if err != nil || !strings.HasPrefix(back.String(), sloIdPURL+"?") || back.Query().Get("Signature") == "" {
		t.Fatalf("LogoutResponse %v %v", back, err)
	}

	if _, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", good, nil)); err == nil {
		t.Error("a replayed LogoutRequest was accepted")
	}

	fresh, _ := f.idp.MakeRedirectLogoutRequest(aliceEmail, "")
	unsigned := *fresh
	q := unsigned.Query()
	q.Del("Signature")
	q.Del("SigAlg")
	unsigned.RawQuery = q.Encode()
	if _, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", unsigned.String(), nil)); err == nil {
		t.Error("an unsigned LogoutRequest was accepted")
	}

	otherKey, otherCert := newSPKeyPair(t)
	_, spCert := newSPKeyPair(t)
	forger := mirrorIdP(otherKey, otherCert, f.spID, f.slo.SPURL, spCert)
	forged, _ := forger.MakeRedirectLogoutRequest(aliceEmail, "")
	if _, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", forged.String(), nil)); err == nil {
		t.Error("a LogoutRequest signed by another key was accepted")
	}

	elsewhere := mirrorIdP(f.idp.Key.(*rsa.PrivateKey), f.idp.Certificate, f.spID, "https://sso.example.com/sso/saml/other/slo", spCert)
	mis, _ := elsewhere.MakeRedirectLogoutRequest(aliceEmail, "")
	if _, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", mis.String(), nil)); err == nil {
		t.Error("a LogoutRequest addressed to another org's SLO URL was accepted")
	}

	withIdx, _ := f.idp.MakeRedirectLogoutRequest(" "+aliceEmail+" ", "", saml.WithSessionIndexes("s1", "s2"))
	if l, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", withIdx.String(), nil)); err != nil ||
		l.NameID != aliceEmail || !slices.Equal(l.SessionIndexes, []string{"s1", "s2"}) {
		t.Errorf("LogoutRequest with session indexes: %+v %v", l, err)
	}

	huge := f.slo.SPURL + "?SAMLRequest=" + strings.Repeat("A", MaxLogoutMessageSize+1) + "&SigAlg=x&Signature=y"
	if _, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", huge, nil)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("oversized LogoutRequest: %v", err)
	}
}

// redirectQuery is an HTTP-Redirect binding query carrying doc, deflated,
// as param, with a bogus query signature: what anyone can put in a link.
func redirectQuery(t *testing.T, param, doc string) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return param + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes())) +
		"&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod) + "&Signature=AAAA"
}

// TestLogoutMessageBombRefusedCheaply: a 1.5 KB link that inflates to a
// megabyte of elements (the security review's request, which made crewjam
// allocate 239 MiB) is refused, as a LogoutRequest and as a
// LogoutResponse, before anything builds a tree of it. The bound is
// generous: the caps keep the work near the 64 KiB they allow.
func TestLogoutMessageBombRefusedCheaply(t *testing.T) {
	f := newSLOFixture(t)
	for _, tc := range []struct {
		param, root string
		call        func(*http.Request) error
	}{
		{"SAMLRequest", "samlp:LogoutRequest", func(r *http.Request) error {
			_, err := f.p.ValidateLogoutRequest(f.slo, r)
			return err
		}},
		{"SAMLResponse", "samlp:LogoutResponse", func(r *http.Request) error {
			return f.p.ParseLogoutResponse(f.slo, r, []string{"id-1"})
		}},
	} {
		doc := `<` + tc.root + ` xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">` + strings.Repeat("<a/>", 262000) + `</` + tc.root + `>`
		q := redirectQuery(t, tc.param, doc)
		if len(q) > 4<<10 {
			t.Fatalf("the bomb is %d bytes of query; it should fit a link", len(q))
		}
		r := httptest.NewRequest("GET", f.slo.SPURL+"?"+q, nil)
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		err := tc.call(r)
		runtime.ReadMemStats(&m1)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "inflates to more than") {
			t.Errorf("%s bomb: %v, want refused as too large inflated", tc.param, err)
		}
		if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 16<<20 {
			t.Errorf("%s bomb: refusing it allocated %d MiB", tc.param, alloc>>20)
		}
	}
}

// TestLogoutMessageShapeCapped: under the size cap, a message with too
// many elements or attributes (10,000 attributes in 60 KiB cost crewjam
// 8 MiB), or nested too deep, is refused before crewjam parses it.
func TestLogoutMessageShapeCapped(t *testing.T) {
	f := newSLOFixture(t)
	open := `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">`
	for _, tc := range []struct{ name, doc, want string }{
		{"many", open + strings.Repeat("<a/>", MaxLogoutElements) + "</samlp:LogoutRequest>", "more than 1000 elements"},
		{"attributes", `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"` + manyAttrs(MaxLogoutAttributes) + "/>", "more than 1000 attributes"},
		{"deep", open + strings.Repeat("<a>", MaxXMLDepth) + strings.Repeat("</a>", MaxXMLDepth) + "</samlp:LogoutRequest>", "deep"},
		{"not base64", "", "not base64"},
		{"not deflated", "", "does not inflate"},
	} {
		q := redirectQuery(t, "SAMLRequest", tc.doc)
		switch tc.name {
		case "not base64":
			q = "SAMLRequest=%21%21&SigAlg=x&Signature=y"
		case "not deflated":
			q = "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("<x/>"))) + "&SigAlg=x&Signature=y"
		}
		_, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", f.slo.SPURL+"?"+q, nil))
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want refused with %q", tc.name, err, tc.want)
		}
	}
}

// manyAttrs is n distinct empty attributes.
func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ` a%d=""`, i)
	}
	return b.String()
}
