package samlsp

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/ssogate/ssogate/examples/demoidp"
)

// TestReasonForEachRefusal: responses refused for different reasons get
// the troubleshooting table's reason for each, not the catch-all, and
// Inspect describes what arrived.
func TestReasonForEachRefusal(t *testing.T) {
	e := newEnv(t)
	org := e.org()
	p := e.provider(t, org, nil)
	now := time.Now().UTC()
	cases := []struct {
		name string
		opts demoidp.RespondOptions
		want string
	}{
		{"SHA-1", demoidp.RespondOptions{SignatureMethod: dsig.RSASHA1SignatureMethod, NoEncryption: true}, "sha1"},
		{"unsigned", demoidp.RespondOptions{Signing: demoidp.SignNothing, NoEncryption: true}, "signature"},
		{"audience", demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Conditions.AudienceRestrictions[0].Audience.Value = "https://other.example"
		}}, "audience"},
		{"IdP clock ahead", demoidp.RespondOptions{MutateResponse: func(r *saml.Response) { r.IssueInstant = now.Add(5 * time.Minute) }}, "not-yet-valid"},
		{"old", demoidp.RespondOptions{MutateResponse: func(r *saml.Response) { r.IssueInstant = now.Add(-5 * time.Minute) }}, "expired"},
		{"IdP said no", demoidp.RespondOptions{MutateResponse: func(r *saml.Response) {
			r.Status.StatusCode.StatusCode = &saml.StatusCode{Value: saml.StatusRequestDenied}
		}}, "idp-status"},
		{"no email", demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.AttributeStatements = nil
			a.Subject.NameID.Value = "opaque-id"
		}}, "no-email"},
		{"destination", demoidp.RespondOptions{MutateResponse: func(r *saml.Response) { r.Destination = "https://elsewhere.example/acs" }}, "destination"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			encoded, reqID := respond(t, p, e.idp, c.opts)
			_, err := p.ParseResponse(encoded, []string{reqID})
			if err == nil {
				t.Fatal("accepted")
			}
			shape := Inspect(encoded, now)
			if r := ReasonFor(err, shape); r.Code != c.want || r.Fix == "" {
				t.Fatalf("reason %q for %v; want %q", r.Code, err, c.want)
			}
			if shape == nil || shape.Issuer != e.idp.EntityID() || shape.ClockDifference == nil {
				t.Fatalf("shape %+v", shape)
			}
		})
	}
}

// TestInspectIsBounded: what Inspect keeps of a stranger's response is
// capped, holds no attribute value, and unreadable input gives nothing.
func TestInspectIsBounded(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, e.org(), nil)
	encoded, _ := respond(t, p, e.idp, demoidp.RespondOptions{NoEncryption: true, Mutate: func(a *saml.Assertion) {
		a.Issuer.Value = strings.Repeat("i", 10_000) + "\n\x00"
		for i := range 100 {
			demoidp.SetAttribute(a, "attr-"+strings.Repeat("n", 500)+string(rune('a'+i%26))+strings.Repeat("x", i), "secret-value")
		}
	}})
	s := Inspect(encoded, time.Now())
	if s == nil {
		t.Fatal("no shape")
	}
	if len(s.Issuer) > maxShapeString+len("…") || strings.ContainsAny(s.Issuer, "\n\x00") {
		t.Errorf("issuer of %d bytes kept", len(s.Issuer))
	}
	if len(s.AttributeNames) > maxShapeNames {
		t.Errorf("%d attribute names kept", len(s.AttributeNames))
	}
	for _, n := range s.AttributeNames {
		if len(n) > maxShapeString+len("…") {
			t.Errorf("attribute name of %d bytes", len(n))
		}
	}
	if s.GroupValues != 2 || !strings.Contains(strings.Join(s.Signed, ","), "assertion") {
		t.Errorf("groups %d, signed %v", s.GroupValues, s.Signed)
	}
	for _, bad := range []string{"", "!!!", base64.StdEncoding.EncodeToString([]byte(`<!DOCTYPE x><x/>`)),
		base64.StdEncoding.EncodeToString([]byte(strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100))), strings.Repeat("A", MaxResponseSize+4)} {
		if s := Inspect(bad, time.Now()); s != nil {
			t.Errorf("Inspect(%.40q) = %+v, want nil", bad, s)
		}
	}
}

// TestTroubleshootingTableInREADME: every reason has words and a fix, and
// README's troubleshooting table lists every code.
func TestTroubleshootingTableInREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for code, r := range reasons {
		if r.Code != code || r.Problem == "" || r.Fix == "" {
			t.Errorf("reason %q: %+v", code, r)
		}
		if !strings.Contains(string(readme), "| `"+code+"` |") {
			t.Errorf("README's troubleshooting table lacks %q", code)
		}
	}
}
