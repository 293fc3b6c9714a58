package samlsp

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/examples/demoidp"
)

// TestSignatureWrapping applies XSW1–XSW8 (SAML Raider's catalogue) to
// genuinely signed responses for alice whose forged copy names mallory.
// Our policy must refuse each one; and, as a second line, crewjam alone
// (without our precheck) must never return the forged identity: it either
// refuses or reads what the signature covers.
func TestSignatureWrapping(t *testing.T) {
	e := newEnv(t)
	const mallory = "mallory@example.com"
	for n := 1; n <= 8; n++ {
		t.Run(fmt.Sprintf("XSW%d", n), func(t *testing.T) {
			p := e.provider(t, e.org(), nil)
			opts := demoidp.RespondOptions{NoEncryption: true, Signing: demoidp.XSWSigning(n)}
			encoded, reqID := respond(t, p, e.idp, opts)
			if _, err := p.ParseResponse(encoded, []string{reqID}); err != nil {
				t.Fatalf("control refused: %v", err)
			}

			tamper, err := demoidp.XSW(n, demoidp.ReplaceText(aliceEmail, mallory, aliceOID, "00u-mallory"))
			if err != nil {
				t.Fatal(err)
			}
			opts.Tamper = tamper
			encoded, reqID = respond(t, p, e.idp, opts)
			raw := decode(t, encoded)
			if !bytes.Contains(raw, []byte(mallory)) || !bytes.Contains(raw, []byte(aliceEmail)) {
				t.Fatalf("the wrapping did not happen:\n%s", raw)
			}
			_, err = p.ParseResponse(encoded, []string{reqID})
			wantRefused(t, err, "2 assertions")

			a, err := p.sp.ParseXMLResponse(raw, []string{reqID}, p.sp.AcsURL)
			if err != nil {
				t.Logf("crewjam alone refuses it too: %v", describe(err))
				return
			}
			id, err := identityOf(a)
			if err != nil {
				t.Fatalf("crewjam accepted an assertion without identity: %v", err)
			}
			if strings.Contains(id.Email+id.NameID+id.ObjectID, "mallory") {
				t.Fatalf("crewjam alone returned the forged identity %+v", id)
			}
			t.Logf("crewjam alone reads the signed original: %s", id.Email)
		})
	}
}
