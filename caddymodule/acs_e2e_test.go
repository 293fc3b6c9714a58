package caddymodule_test

import (
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/demoidp"
)

// respond starts a sign-in in b and lets the demo IdP answer it directly,
// shaped by opts, then posts the answer to the ACS.
func respond(t *testing.T, b *browser, email string, opts demoidp.RespondOptions) page {
	t.Helper()
	authnURL := b.startLogin(email, "")
	acs, form, err := env.IdP.RespondWith(authnURL, email, opts)
	if err != nil {
		t.Fatalf("IdP RespondWith: %v", err)
	}
	return b.post(acs, form)
}

func TestACSRefusesBadResponses(t *testing.T) {
	past := time.Now().Add(-time.Hour)
	cases := []struct {
		name string
		opts demoidp.RespondOptions
	}{
		{"expired", demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.IssueInstant = past
			a.Conditions.NotBefore = past.Add(-time.Minute)
			a.Conditions.NotOnOrAfter = past.Add(5 * time.Minute)
			for i := range a.Subject.SubjectConfirmations {
				a.Subject.SubjectConfirmations[i].SubjectConfirmationData.NotOnOrAfter = past.Add(5 * time.Minute)
			}
			for i := range a.AuthnStatements {
				a.AuthnStatements[i].AuthnInstant = past
			}
		}}},
		{"expired just beyond the 90s skew", demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			end := time.Now().Add(-100 * time.Second)
			a.Conditions.NotOnOrAfter = end
			for i := range a.Subject.SubjectConfirmations {
				a.Subject.SubjectConfirmations[i].SubjectConfirmationData.NotOnOrAfter = end
			}
		}}},
		{"not yet valid", demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Conditions.NotBefore = time.Now().Add(10 * time.Minute)
		}}},
		{"unsigned", demoidp.RespondOptions{Signing: demoidp.SignNothing, NoEncryption: true}},
		{"unsigned but encrypted", demoidp.RespondOptions{Signing: demoidp.SignNothing}},
		{"SHA-1 signature", demoidp.RespondOptions{SignatureMethod: dsig.RSASHA1SignatureMethod}},
		{"wrong audience", demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			for i := range a.Conditions.AudienceRestrictions {
				a.Conditions.AudienceRestrictions[i].Audience.Value = "https://other-sp.example/saml"
			}
		}}},
		{"wrong recipient", demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			for i := range a.Subject.SubjectConfirmations {
				a.Subject.SubjectConfirmations[i].SubjectConfirmationData.Recipient = "https://other-sp.example/acs"
			}
		}}},
		{"wrong destination", demoidp.RespondOptions{MutateResponse: func(r *saml.Response) {
			r.Destination = "https://other-sp.example/acs"
		}}},
		{"no destination", demoidp.RespondOptions{MutateResponse: func(r *saml.Response) {
			r.Destination = ""
		}}},
		{"wrong issuer", demoidp.RespondOptions{
			Mutate:         func(a *saml.Assertion) { a.Issuer.Value = "https://evil-idp.example/metadata" },
			MutateResponse: func(r *saml.Response) { r.Issuer.Value = "https://evil-idp.example/metadata" },
		}},
		{"wrong InResponseTo", demoidp.RespondOptions{
			Mutate: func(a *saml.Assertion) {
				for i := range a.Subject.SubjectConfirmations {
					a.Subject.SubjectConfirmations[i].SubjectConfirmationData.InResponseTo = "id-not-ours"
				}
			},
			MutateResponse: func(r *saml.Response) { r.InResponseTo = "id-not-ours" },
		}},
		{"status not success", demoidp.RespondOptions{MutateResponse: func(r *saml.Response) {
			r.Status.StatusCode.Value = saml.StatusRequester
		}}},
		{"email of another domain", demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, "name", "alice@other-company.test")
			a.Subject.NameID.Value = "alice@other-company.test"
		}}},
		{"empty NameID and no objectidentifier", demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Subject.NameID.Value = ""
			demoidp.SetAttribute(a, "objectidentifier")
		}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBrowser(t)
			p := respond(t, b, demo.AliceEmail, c.opts)
			if p.status < 400 || p.status >= 500 {
				t.Fatalf("want a 4xx refusal page, got %d %q\n%s", p.status, p.location, p.body)
			}
			if !strings.Contains(p.header.Get("Content-Type"), "text/html") {
				t.Errorf("refusal is not an HTML page: %q", p.header.Get("Content-Type"))
			}
			assertSignedOut(t, b)
		})
	}
}

func TestACSControl(t *testing.T) {
	// The same path with no mutation succeeds: the refusals above are the
	// mutations' doing, not the harness's.
	b := newBrowser(t)
	p := respond(t, b, demo.AliceEmail, demoidp.RespondOptions{})
	if p.status != http.StatusSeeOther {
		t.Fatalf("unmodified response: want 303, got %d\n%s", p.status, p.body)
	}
	signedIn(t, b)
}

func TestACSRefusesReplays(t *testing.T) {
	b := newBrowser(t)
	authnURL := b.startLogin(demo.AliceEmail, "")
	acs, form, err := env.IdP.Respond(authnURL, demo.AliceEmail, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := b.post(acs, form); p.status != http.StatusSeeOther {
		t.Fatalf("first use: %d\n%s", p.status, p.body)
	}
	// Same browser, signed out, posts it again.
	b.post(env.GatewayURL+"/sso/logout", nil)
	if p := b.post(acs, form); p.status < 400 {
		t.Fatalf("replay in the same browser accepted: %d", p.status)
	}
	assertSignedOut(t, b)
	// Another browser with a request of its own outstanding.
	other := newBrowser(t)
	other.startLogin(demo.AliceEmail, "")
	if p := other.post(acs, form); p.status < 400 {
		t.Fatalf("replay in another browser accepted: %d", p.status)
	}
	assertSignedOut(t, other)
}

func TestACSRefusesUnsolicitedResponses(t *testing.T) {
	b := newBrowser(t)
	acs, form, err := env.IdP.Unsolicited(demo.OrgID, demo.AliceEmail, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := b.post(acs, form); p.status < 400 {
		t.Fatalf("unsolicited response accepted: %d", p.status)
	}
	assertSignedOut(t, b)
}

func TestACSRefusesAResponseStartedInAnotherBrowser(t *testing.T) {
	victim := newBrowser(t)
	authnURL := victim.startLogin(demo.AliceEmail, "")
	acs, form, err := env.IdP.Respond(authnURL, demo.AliceEmail, nil)
	if err != nil {
		t.Fatal(err)
	}
	attacker := newBrowser(t)
	if p := attacker.post(acs, form); p.status < 400 {
		t.Fatalf("response accepted in a browser that did not ask for it: %d", p.status)
	}
	assertSignedOut(t, attacker)
}

func TestACSRefusesMalformedInput(t *testing.T) {
	acs := env.GatewayURL + "/sso/saml/" + demo.OrgID + "/acs"
	// Just over the cap: small enough for loopback socket buffers to take
	// whole, so the early 413 is read rather than lost to a reset (much
	// bigger bodies: TestAttackOversizedBody, on raw TCP).
	huge := strings.Repeat("A", 300<<10) // the cap is 272 KiB
	cases := map[string]url.Values{
		"no SAMLResponse":  {},
		"not base64":       {"SAMLResponse": {"%%%not-base64%%%"}},
		"not XML":          {"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte("hello"))}},
		"DOCTYPE":          {"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>`))}},
		"artifact binding": {"SAMLart": {"AAQAAA=="}},
		"oversized":        {"SAMLResponse": {huge}},
	}
	for name, form := range cases {
		t.Run(name, func(t *testing.T) {
			b := newBrowser(t)
			b.startLogin(demo.AliceEmail, "")
			p := b.post(acs, form)
			if p.status < 400 || p.status >= 500 {
				t.Fatalf("want 4xx, got %d\n%.500s", p.status, p.body)
			}
			assertSignedOut(t, b)
		})
	}
	b := newBrowser(t)
	if p := b.get(acs); p.status != http.StatusMethodNotAllowed {
		t.Errorf("GET ACS: want 405, got %d", p.status)
	}
	if p := b.post(env.GatewayURL+"/sso/saml/no-such-org/acs", url.Values{"SAMLResponse": {"eA=="}}); p.status != http.StatusNotFound {
		t.Errorf("ACS of unknown org: want 404, got %d", p.status)
	}
}

func TestSPMetadata(t *testing.T) {
	b := newBrowser(t)
	p := b.get(env.GatewayURL + "/sso/saml/" + demo.OrgID + "/metadata")
	if p.status != http.StatusOK {
		t.Fatalf("metadata: %d", p.status)
	}
	var ed saml.EntityDescriptor
	if err := xmlUnmarshal([]byte(p.body), &ed); err != nil {
		t.Fatal(err)
	}
	want := env.GatewayURL + "/sso/saml/" + demo.OrgID
	if ed.EntityID != want {
		t.Errorf("entityID %q, want %q", ed.EntityID, want)
	}
	if len(ed.SPSSODescriptors) != 1 || ed.SPSSODescriptors[0].AssertionConsumerServices[0].Location != want+"/acs" {
		t.Errorf("ACS location wrong: %+v", ed.SPSSODescriptors)
	}
	if p := b.get(env.GatewayURL + "/sso/saml/nope/metadata"); p.status != http.StatusNotFound {
		t.Errorf("unknown org metadata: %d", p.status)
	}
}

func xmlUnmarshal(b []byte, v any) error { return xml.Unmarshal(b, v) }
