package samlsp

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

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
	nameID, reqID, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", good, nil))
	if err != nil {
		t.Fatalf("valid LogoutRequest refused: %v", err)
	}
	if nameID != aliceEmail || reqID == "" {
		t.Fatalf("nameID %q id %q", nameID, reqID)
	}
	back, err := f.p.LogoutResponse(f.slo, reqID, "relay")
	if err != nil || !strings.HasPrefix(back.String(), sloIdPURL+"?") || back.Query().Get("Signature") == "" {
		t.Fatalf("LogoutResponse %v %v", back, err)
	}

	if _, _, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", good, nil)); err == nil {
		t.Error("a replayed LogoutRequest was accepted")
	}

	fresh, _ := f.idp.MakeRedirectLogoutRequest(aliceEmail, "")
	unsigned := *fresh
	q := unsigned.Query()
	q.Del("Signature")
	q.Del("SigAlg")
	unsigned.RawQuery = q.Encode()
	if _, _, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", unsigned.String(), nil)); err == nil {
		t.Error("an unsigned LogoutRequest was accepted")
	}

	otherKey, otherCert := newSPKeyPair(t)
	_, spCert := newSPKeyPair(t)
	forger := mirrorIdP(otherKey, otherCert, f.spID, f.slo.SPURL, spCert)
	forged, _ := forger.MakeRedirectLogoutRequest(aliceEmail, "")
	if _, _, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", forged.String(), nil)); err == nil {
		t.Error("a LogoutRequest signed by another key was accepted")
	}

	elsewhere := mirrorIdP(f.idp.Key.(*rsa.PrivateKey), f.idp.Certificate, f.spID, "https://sso.example.com/sso/saml/other/slo", spCert)
	mis, _ := elsewhere.MakeRedirectLogoutRequest(aliceEmail, "")
	if _, _, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", mis.String(), nil)); err == nil {
		t.Error("a LogoutRequest addressed to another org's SLO URL was accepted")
	}

	huge := f.slo.SPURL + "?SAMLRequest=" + strings.Repeat("A", MaxLogoutMessageSize+1) + "&SigAlg=x&Signature=y"
	if _, _, err := f.p.ValidateLogoutRequest(f.slo, httptest.NewRequest("GET", huge, nil)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("oversized LogoutRequest: %v", err)
	}
}
