package samlsp

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/examples/demoidp"
)

// fuzzSeeds are genuinely signed responses of the demo IdP for alice, in
// the shapes the IdP sends, and the attacks of the suite built on them.
// testdata/fuzz holds the same shapes from an earlier run (their
// signatures do not verify against this run's IdP key, but their
// structure seeds the parser).
//
// They are all in the clear: RSA-OAEP decryption is randomized (key
// blinding), so an encrypted seed makes coverage differ from one run of
// the same input to the next, and the fuzzer spends its budget minimizing
// inputs it wrongly takes for new. Encrypted responses are covered by the
// unit and end-to-end tests.
func fuzzSeeds(f testing.TB, p *Provider, idp *demoidp.IdP) (seeds []string, requestIDs []string) {
	f.Helper()
	opts := []demoidp.RespondOptions{
		{NoEncryption: true},
		{NoEncryption: true, Signing: demoidp.SignAssertionOnly},
		{NoEncryption: true, Signing: demoidp.SignResponseOnly},
		{NoEncryption: true, Mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, "http://schemas.microsoft.com/claims/groups.link", "https://graph.microsoft.com/v1.0/users/x/getMemberObjects")
		}},
		{NoEncryption: true, Signing: demoidp.SignAssertionOnly, Tamper: demoidp.StripSignatures},
		{NoEncryption: true, Tamper: demoidp.SplitWithComment(aliceEmail, "alice@")},
	}
	for n := 1; n <= 8; n++ {
		tamper, err := demoidp.XSW(n, demoidp.ReplaceText(aliceEmail, "mallory@example.com"))
		if err != nil {
			f.Fatal(err)
		}
		opts = append(opts, demoidp.RespondOptions{NoEncryption: true, Signing: demoidp.XSWSigning(n), Tamper: tamper})
	}
	for _, o := range opts {
		encoded, id := respond(f, p, idp, o)
		seeds = append(seeds, encoded)
		requestIDs = append(requestIDs, id)
	}
	return seeds, requestIDs
}

// checkParsed holds the invariants of a parse: no panic (the fuzzer sees
// it), every error a refusal, and an accepted response names alice — the
// only identity the IdP ever signed — with the identity fields the
// gateway relies on.
func checkParsed(t *testing.T, id *Identity, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("error %q does not wrap ErrRefused", err)
		}
		if id != nil {
			t.Fatalf("identity %+v returned with error %v", id, err)
		}
		return
	}
	if id == nil || id.AssertionID == "" || id.NameID == "" {
		t.Fatalf("accepted without an assertion ID or NameID: %+v", id)
	}
	if id.Email != aliceEmail || EmailDomain(id.Email) == "" {
		t.Fatalf("accepted an identity the IdP never signed: %+v", id)
	}
}

// FuzzParseResponse feeds the ACS's SAMLResponse form value (base64) to
// ParseResponse.
func FuzzParseResponse(f *testing.F) {
	e := newEnv(f)
	p := e.provider(f, e.org(), nil)
	seeds, ids := fuzzSeeds(f, p, e.idp)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add("")
	f.Add("PD94bWw/Pg==")
	f.Fuzz(func(t *testing.T, encoded string) {
		id, err := p.ParseResponse(encoded, ids)
		checkParsed(t, id, err)
	})
}

// FuzzParseResponseXML feeds decoded XML to ParseResponse, so that the
// fuzzer mutates the document rather than its base64.
func FuzzParseResponseXML(f *testing.F) {
	e := newEnv(f)
	p := e.provider(f, e.org(), nil)
	seeds, ids := fuzzSeeds(f, p, e.idp)
	for _, s := range seeds {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		// The same response re-serialized by etree, with another layout
		// of namespaces and whitespace for the mutator to start from.
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(raw); err == nil {
			doc.Indent(1)
			if out, err := doc.WriteToBytes(); err == nil && !slices.Equal(out, raw) {
				f.Add(out)
			}
		}
	}
	f.Add([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" Destination="x"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">i</saml:Issuer><saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"/></samlp:Response>`))
	f.Add([]byte(strings.Repeat("<a>", 1000)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		id, err := p.ParseResponse(base64.StdEncoding.EncodeToString(raw), ids)
		checkParsed(t, id, err)
	})
}
