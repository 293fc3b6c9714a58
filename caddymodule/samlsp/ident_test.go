package samlsp

import (
	"testing"

	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/examples/demoidp"
)

// An asserted email is one addr-spec. Each of these passed the old
// "contains @" check; the first passed the verified-domain check (the
// last '@'), the comma list reached the upstream verbatim.
func TestAssertedEmailIsOneAddrSpec(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, e.org(), nil)
	for _, v := range []string{
		"alice@evil.test@example.com",
		"alice@example.com, mallory@example.com",
		"alice@example.com,mallory@example.com",
		"alice\n@example.com",
		"alice@example.com\nmallory@example.com",
		`"alice@evil.test"@example.com`,
		"alice(admin)@example.com",
		"Alice <alice@example.com>",
		"alice@[192.0.2.1]",
		"ali\u202ece@example.com", // RIGHT-TO-LEFT OVERRIDE
	} {
		t.Run(v, func(t *testing.T) {
			encoded, reqID := respond(t, p, e.idp, demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
				demoidp.SetAttribute(a, demoidp.AttrName, v)
			}})
			id, err := p.ParseResponse(encoded, []string{reqID})
			if err == nil {
				t.Fatalf("accepted, email %q", id.Email)
			}
			wantRefused(t, err, "not an email address")
		})
	}
}
