package samlsp

import (
	"testing"

	"github.com/ssogate/ssogate/examples/demoidp"
)

// BenchmarkParseResponse is the ACS's validation of one response: decoding,
// precheck, signature verification, decryption where the IdP encrypts,
// every condition, and attribute mapping. Replay is nil so that the same
// response can be validated again; the demo IdP's responses stay valid
// for about 90 seconds of real time.
func BenchmarkParseResponse(b *testing.B) {
	e := newEnv(b)
	p := e.provider(b, e.org(), nil)
	for _, bc := range []struct {
		name string
		opts demoidp.RespondOptions
	}{
		{"encrypted", demoidp.RespondOptions{}},
		{"plain", demoidp.RespondOptions{NoEncryption: true}},
		{"assertion-signed", demoidp.RespondOptions{NoEncryption: true, Signing: demoidp.SignAssertionOnly}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			encoded, reqID := respond(b, p, e.idp, bc.opts)
			ids := []string{reqID}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.ParseResponse(encoded, ids); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAuthnRequest(b *testing.B) {
	e := newEnv(b)
	p := e.provider(b, e.org(), nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := p.AuthnRequest(""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNew is the per-request cost of building an org's provider from
// its stored settings (certificate parsing included).
func BenchmarkNew(b *testing.B) {
	e := newEnv(b)
	cfg := Config{Org: e.org(), URLs: spURLs(testOrgID), Key: e.spKey, Certificate: e.spCert}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(cfg); err != nil {
			b.Fatal(err)
		}
	}
}
