package samlsp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/examples/demoidp"
	"github.com/ssogate/ssogate/store"
)

const (
	testOrgID = "acme"
	// idpBaseURL is where the demo IdP would be served. RespondWith needs
	// no HTTP, so nothing listens there; a second IdP with the same base
	// URL has the same entity ID and SSO URL but its own key, which is what
	// an attacker (or a rotated IdP key) looks like to the SP.
	idpBaseURL = "https://idp.example.net"

	aliceEmail = "alice@example.com"
	aliceOID   = "00u-alice-0001"
	aliceName  = "Alice Liddell"
)

var aliceGroups = []string{"Business Account Admins", "Engineering"}

// spURLs are the SP endpoints of org, as the gateway derives them.
func spURLs(org string) URLs {
	base := "https://sso.example.com/sso/saml/" + org
	return URLs{EntityID: base, ACSURL: base + "/acs", MetadataURL: base + "/metadata"}
}

// testEnv is one gateway SP key pair and the demo IdP of org "acme", which
// knows the SP from its metadata.
type testEnv struct {
	spKey  *rsa.PrivateKey
	spCert *x509.Certificate
	idp    *demoidp.IdP
}

func newEnv(tb testing.TB) *testEnv {
	tb.Helper()
	key, cert := newSPKeyPair(tb)
	e := &testEnv{spKey: key, spCert: cert}
	e.idp = e.newIdP(tb)
	return e
}

// newIdP starts a demo IdP at idpBaseURL, with a key of its own, and
// registers the org's SP with it.
func (e *testEnv) newIdP(tb testing.TB) *demoidp.IdP {
	tb.Helper()
	idp, err := demoidp.New(demoidp.Config{
		BaseURL: idpBaseURL,
		Users: []demoidp.User{{
			Email: aliceEmail, Password: "correct horse battery staple", ObjectID: aliceOID,
			DisplayName: aliceName, GivenName: "Alice", FamilyName: "Liddell", Groups: aliceGroups,
		}},
	})
	if err != nil {
		tb.Fatalf("demoidp.New: %v", err)
	}
	md, err := Metadata(spURLs(testOrgID), e.spKey, e.spCert)
	if err != nil {
		tb.Fatalf("Metadata: %v", err)
	}
	if err := idp.RegisterServiceProvider(testOrgID, md); err != nil {
		tb.Fatalf("RegisterServiceProvider: %v", err)
	}
	return idp
}

// org is organization "acme" trusting the certificates of idps (e.idp if
// none are given).
func (e *testEnv) org(idps ...*demoidp.IdP) *store.Org {
	if len(idps) == 0 {
		idps = []*demoidp.IdP{e.idp}
	}
	o := &store.Org{ID: testOrgID, Name: "Acme", State: store.OrgActive}
	o.IdP.EntityID = idps[0].EntityID()
	o.IdP.SSOURL = idps[0].SSOURL()
	for _, idp := range idps {
		o.IdP.Certificates = append(o.IdP.Certificates, idp.CertificatePEM())
	}
	return o
}

func (e *testEnv) provider(tb testing.TB, org *store.Org, replay *store.Store) *Provider {
	tb.Helper()
	cfg := Config{Org: org, URLs: spURLs(org.ID), Key: e.spKey, Certificate: e.spCert}
	if replay != nil {
		cfg.Replay = NewReplayCache(replay, org.ID)
	}
	p, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return p
}

// respond sends an AuthnRequest of p to idp and returns the base64
// SAMLResponse that answers it for alice, and the request's ID.
func respond(tb testing.TB, p *Provider, idp *demoidp.IdP, opts demoidp.RespondOptions) (encoded, requestID string) {
	tb.Helper()
	id, u, err := p.AuthnRequest("relay-1")
	if err != nil {
		tb.Fatalf("AuthnRequest: %v", err)
	}
	acs, form, err := idp.RespondWith(u.String(), aliceEmail, opts)
	if err != nil {
		tb.Fatalf("RespondWith: %v", err)
	}
	if want := spURLs(testOrgID).ACSURL; acs != want {
		tb.Fatalf("IdP posts to %q, want %q", acs, want)
	}
	return form.Get("SAMLResponse"), id
}

// wantRefused checks that err is a refusal whose reason mentions want, so
// that a test fails when a response is refused for another reason than the
// one it is about.
func wantRefused(tb testing.TB, err error, want string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("accepted; want refused (%s)", want)
	}
	if !errors.Is(err, ErrRefused) {
		tb.Fatalf("error %q does not wrap ErrRefused", err)
	}
	if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
		tb.Fatalf("refused for another reason: %q; want it to mention %q", err, want)
	}
	tb.Logf("refused as expected: %v", err)
}

func decode(tb testing.TB, encoded string) []byte {
	tb.Helper()
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func newSPKeyPair(tb testing.TB) (*rsa.PrivateKey, *x509.Certificate) {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ssogate test SP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key, cert
}

func openStore(tb testing.TB, dir string) *store.Store {
	tb.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		tb.Fatalf("store.Open: %v", err)
	}
	return st
}
