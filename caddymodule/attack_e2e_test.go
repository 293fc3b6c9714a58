package caddymodule_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/caddyserver/caddy/v2"
	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/demoidp"
)

// The SAML attack suite: each well-known attack class is built from
// genuinely signed responses of the demo IdP and posted to the real ACS.
// Every attack must be refused with a 4xx page, leave no session (the
// upstream still refuses the browser's cookie jar), and be refused for the
// reason it is about, as the audit trail records it.

const (
	// carol is a user of example.com the IdP never vouched for: forged
	// responses name her, so an accepted forgery would sign her in.
	carolEmail = "carol@example.com"
	carolOID   = "00u-carol-forged"
)

// forge replaces Alice's identity with Carol's in a forged copy: her
// email in the NameID and the name attribute, and her IdP user ID.
func forge(el *etree.Element) {
	demoidp.ReplaceText(demo.AliceEmail, carolEmail)(el)
	for _, attr := range el.FindElements(".//Attribute[@Name='" + demoidp.AttrObjectID + "']") {
		for _, v := range attr.SelectElements("AttributeValue") {
			v.SetText(carolOID)
		}
	}
}

func acsOf(org string) string { return env.GatewayURL + "/sso/saml/" + org + "/acs" }

// auditEvent is an event of the admin API's audit trail.
type auditEvent struct {
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Outcome string            `json:"outcome"`
	Details map[string]string `json:"details"`
}

func lastAudit(t *testing.T, org string) auditEvent {
	t.Helper()
	out, err := env.Admin(context.Background(), http.MethodGet, env.AdminURL+"/sso/orgs/"+org+"/audit?limit=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var evs []auditEvent
	if err := json.Unmarshal(out, &evs); err != nil || len(evs) != 1 {
		t.Fatalf("audit trail: %v: %s", err, out)
	}
	return evs[0]
}

// wantRefusal checks that p is a refusal page of org's ACS for the reason
// want (a fragment of the audited reason), and that b has no session.
func wantRefusal(t *testing.T, b *browser, org string, p page, want string) auditEvent {
	t.Helper()
	if p.status < 400 || p.status >= 500 {
		t.Fatalf("want a 4xx refusal, got %d %q\n%.600s", p.status, p.location, p.body)
	}
	ev := lastAudit(t, org)
	if ev.Action != "login.saml" || ev.Outcome != "denied" ||
		!strings.Contains(strings.ToLower(ev.Details["reason"]), strings.ToLower(want)) {
		t.Errorf("refused, but the audit trail says %+v; want a denied login.saml mentioning %q", ev, want)
	} else {
		t.Logf("refused (%d): %s", p.status, ev.Details["reason"])
	}
	assertSignedOut(t, b)
	return ev
}

// attackResponse starts Alice's sign-in in b and returns the demo IdP's
// answer shaped by opts, not yet posted.
func attackResponse(t *testing.T, b *browser, idp *demoidp.IdP, opts demoidp.RespondOptions) (string, url.Values) {
	t.Helper()
	acs, form, err := idp.RespondWith(b.startLogin(demo.AliceEmail, ""), demo.AliceEmail, opts)
	if err != nil {
		t.Fatalf("RespondWith: %v", err)
	}
	return acs, form
}

func decodedResponse(t *testing.T, form url.Values) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestAttackSignatureWrapping: XSW1–XSW8 as SAML Raider builds them, each
// with its forged copy naming Carol, after a control showing the same
// response unwrapped signs in.
func TestAttackSignatureWrapping(t *testing.T) {
	for n := 1; n <= 8; n++ {
		t.Run(fmt.Sprintf("XSW%d", n), func(t *testing.T) {
			opts := demoidp.RespondOptions{NoEncryption: true, Signing: demoidp.XSWSigning(n)}
			control := newBrowser(t)
			if p := control.post(attackResponse(t, control, env.IdP, opts)); p.status != http.StatusSeeOther {
				t.Fatalf("control: want 303, got %d\n%s", p.status, p.body)
			}
			signedIn(t, control)

			tamper, err := demoidp.XSW(n, forge)
			if err != nil {
				t.Fatal(err)
			}
			opts.Tamper = tamper
			b := newBrowser(t)
			acs, form := attackResponse(t, b, env.IdP, opts)
			if !bytes.Contains(decodedResponse(t, form), []byte(carolEmail)) {
				t.Fatal("the wrapping did not happen")
			}
			wantRefusal(t, b, demo.OrgID, b.post(acs, form), "2 assertions")
		})
	}
	assertNoUser(t, demo.OrgID, carolEmail)
}

// assertNoUser checks that no user with email exists in org.
func assertNoUser(t *testing.T, org, email string) {
	t.Helper()
	out, err := env.Admin(context.Background(), http.MethodGet, env.AdminURL+"/sso/orgs/"+org+"/users", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(string(out)), strings.ToLower(email)) {
		t.Errorf("%s was stored as a user of %s: %s", email, org, out)
	}
}

// TestAttackCommentInjection: the IdP signs an identity the attacker
// registered, and the attacker cuts it with a comment, which the
// signature does not cover. The identity that results is the whole value
// (encoding/xml joins the text around a comment), never the prefix.
func TestAttackCommentInjection(t *testing.T) {
	t.Run("NameID and name attribute", func(t *testing.T) {
		const registered = demo.AliceEmail + ".evil.example"
		b := newBrowser(t)
		acs, form := attackResponse(t, b, env.IdP, demoidp.RespondOptions{
			NoEncryption: true,
			Mutate: func(a *saml.Assertion) {
				a.Subject.NameID.Value = registered
				demoidp.SetAttribute(a, demoidp.AttrName, registered)
				demoidp.SetAttribute(a, demoidp.AttrObjectID, "00u-evil-registered")
			},
			Tamper: demoidp.SplitWithComment(registered, demo.AliceEmail),
		})
		if !bytes.Contains(decodedResponse(t, form), []byte(demo.AliceEmail+"<!---->")) {
			t.Fatal("the injection did not happen")
		}
		ev := wantRefusal(t, b, demo.OrgID, b.post(acs, form), "outside the org's verified domains")
		if ev.Actor != registered {
			t.Errorf("the asserted identity was read as %q, want the whole %q", ev.Actor, registered)
		}
	})
	t.Run("groups attribute", func(t *testing.T) {
		const registered = demo.AdminGroupName + "-lookalike"
		b := newBrowser(t)
		acs, form := attackResponse(t, b, env.IdP, demoidp.RespondOptions{
			NoEncryption: true,
			Mutate:       func(a *saml.Assertion) { demoidp.SetAttribute(a, demoidp.AttrGroups, "staff", registered) },
			Tamper:       demoidp.SplitWithComment(registered, demo.AdminGroupName),
		})
		if !bytes.Contains(decodedResponse(t, form), []byte(demo.AdminGroupName+"<!---->")) {
			t.Fatal("the injection did not happen")
		}
		wantRefusal(t, b, demo.OrgID, b.post(acs, form), "not in the admin group")
	})
}

// TestAttackSignatureExclusion strips every signature from a response
// whose identity was changed.
func TestAttackSignatureExclusion(t *testing.T) {
	for name, s := range map[string]demoidp.Signing{
		"response and assertion were signed": demoidp.SignResponseAndAssertion,
		"assertion was signed":               demoidp.SignAssertionOnly,
		"response was signed":                demoidp.SignResponseOnly,
	} {
		t.Run(name, func(t *testing.T) {
			b := newBrowser(t)
			acs, form := attackResponse(t, b, env.IdP, demoidp.RespondOptions{
				NoEncryption: true, Signing: s,
				Tamper: func(root *etree.Element) {
					demoidp.StripSignatures(root)
					forge(root)
				},
			})
			if raw := decodedResponse(t, form); bytes.Contains(raw, []byte("Signature")) || !bytes.Contains(raw, []byte(carolEmail)) {
				t.Fatalf("the exclusion did not happen:\n%s", raw)
			}
			wantRefusal(t, b, demo.OrgID, b.post(acs, form), "signature")
		})
	}
}

// TestAttackUntrustedCertificate: responses signed by a key whose
// certificate is not in the org's list — an attacker's IdP with the same
// entity ID and SSO URL, which embeds its self-signed certificate in
// KeyInfo, re-signing a response that names Carol; and the same with
// KeyInfo claiming the trusted IdP's certificate.
func TestAttackUntrustedCertificate(t *testing.T) {
	attacker, err := demoidp.New(demoidp.Config{
		BaseURL: env.IdPURL,
		Users: []demoidp.User{{
			Email: demo.AliceEmail, Password: "x", DisplayName: "Alice Admin", Groups: []string{demo.AdminGroupName},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	md, err := env.Admin(context.Background(), http.MethodGet, env.GatewayURL+"/sso/saml/"+demo.OrgID+"/metadata", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := attacker.RegisterServiceProvider(demo.OrgID, md); err != nil {
		t.Fatal(err)
	}
	toCarol := func(a *saml.Assertion) {
		a.Subject.NameID.Value = carolEmail
		demoidp.SetAttribute(a, demoidp.AttrName, carolEmail)
		demoidp.SetAttribute(a, demoidp.AttrObjectID, carolOID)
	}
	cases := map[string]demoidp.RespondOptions{
		"self-signed certificate in KeyInfo, encrypted": {Mutate: toCarol},
		"self-signed certificate in KeyInfo, in clear":  {Mutate: toCarol, NoEncryption: true},
		"assertion only":                         {Mutate: toCarol, NoEncryption: true, Signing: demoidp.SignAssertionOnly},
		"KeyInfo claims the trusted certificate": {Mutate: toCarol, NoEncryption: true, Tamper: demoidp.ClaimCertificate(env.IdP.Certificate().Raw)},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			b := newBrowser(t)
			acs, form := attackResponse(t, b, attacker, opts)
			if !bytes.Contains(decodedResponse(t, form), []byte("X509Certificate")) {
				t.Fatal("no certificate in KeyInfo")
			}
			wantRefusal(t, b, demo.OrgID, b.post(acs, form), "signature")
		})
	}
	assertNoUser(t, demo.OrgID, carolEmail)
}

// orgB is a second organization, attack-b with domain b-corp.test, that
// uses the same IdP as the demo org (as two tenants of one IdP would):
// its certificate is trusted by both, so only the SP's checks keep their
// responses apart.
const (
	orgB      = "attack-b"
	orgBEmail = "dave@b-corp.test"
)

func setUpOrgB(t *testing.T, allowIdPInitiated bool) {
	t.Helper()
	ctx := context.Background()
	base := env.AdminURL + "/sso/orgs"
	t.Cleanup(func() { _, _ = env.Admin(ctx, http.MethodDelete, base+"/"+orgB, nil) })
	out, err := env.Admin(ctx, http.MethodPost, base, map[string]any{"id": orgB, "name": "B Corp", "owner_email": "owner@b-corp.test"})
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		OwnerInviteURL string `json:"owner_invite_url"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.OwnerInviteURL == "" {
		t.Fatalf("no owner link in %s", out)
	}
	steps := []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, base + "/" + orgB + "/domains", map[string]any{"name": "b-corp.test"}},
		{http.MethodPost, base + "/" + orgB + "/domains/b-corp.test/verify", map[string]any{"force": true}},
		{http.MethodPut, base + "/" + orgB + "/admin-group", map[string]any{"name": demo.AdminGroupName, "id": "00gBadmins"}},
		{http.MethodPut, base + "/" + orgB + "/idp", map[string]any{
			"entity_id": env.IdP.EntityID(), "sso_url": env.IdP.SSOURL(), "certificates": []string{env.IdP.CertificatePEM()},
		}},
		{http.MethodPatch, base + "/" + orgB, map[string]any{"allow_idp_initiated": allowIdPInitiated}},
		{http.MethodPost, base + "/" + orgB + "/scim-token", nil},
		{http.MethodPut, base + "/" + orgB + "/steps/register", map[string]any{"done": true}},
		{http.MethodPut, base + "/" + orgB + "/steps/saml", map[string]any{"done": true}},
		{http.MethodPut, base + "/" + orgB + "/steps/scim", map[string]any{"done": true}},
		{http.MethodPut, base + "/" + orgB + "/steps/users", map[string]any{"done": true}},
	}
	for _, s := range steps {
		if _, err := env.Admin(ctx, s.method, s.path, s.body); err != nil {
			t.Fatal(err)
		}
	}
	// The owner chooses a password and signs in once, which makes the
	// account eligible as the backup login.
	owner := newBrowser(t)
	const password = "b-corp owner's long password"
	action, form := parseForm(t, owner.get(created.OwnerInviteURL).body)
	form.Set("password", password)
	form.Set("confirm", password)
	if p := owner.post(resolve(created.OwnerInviteURL, action), form); p.status != http.StatusOK {
		t.Fatalf("owner's set-password: %d\n%s", p.status, p.body)
	}
	action, form = parseForm(t, owner.get(env.GatewayURL+"/sso/backup").body)
	form.Set("email", "owner@b-corp.test")
	form.Set("password", password)
	if p := owner.post(resolve(env.GatewayURL+"/sso/backup", action), form); p.status != http.StatusSeeOther {
		t.Fatalf("owner's first sign-in: %d\n%s", p.status, p.body)
	}
	if _, err := env.Admin(ctx, http.MethodPost, base+"/"+orgB+"/activate", nil); err != nil {
		t.Fatal(err)
	}
	md, err := env.Admin(ctx, http.MethodGet, env.GatewayURL+"/sso/saml/"+orgB+"/metadata", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.IdP.RegisterServiceProvider(orgB, md); err != nil {
		t.Fatal(err)
	}
}

// asDave makes the IdP assert Dave of b-corp.test (Alice's IdP account
// with B's identity, so that B's admin group is asserted).
func asDave(a *saml.Assertion) {
	a.Subject.NameID.Value = orgBEmail
	demoidp.SetAttribute(a, demoidp.AttrName, orgBEmail)
	demoidp.SetAttribute(a, demoidp.AttrObjectID, "00u-dave-0001")
}

// TestAttackCrossOrganization: responses of the shared IdP for one org's
// SP sent to the other's ACS, and assertions of an email in the other
// org's verified domain.
func TestAttackCrossOrganization(t *testing.T) {
	setUpOrgB(t, false)
	bURLs := struct{ entity, acs string }{env.GatewayURL + "/sso/saml/" + orgB, acsOf(orgB)}

	t.Run("B's genuine response posted to A's ACS", func(t *testing.T) {
		b := newBrowser(t)
		b.startLogin(demo.AliceEmail, "") // A's request outstanding too
		acs, form, err := env.IdP.RespondWith(b.startLogin(orgBEmail, ""), demo.AliceEmail, demoidp.RespondOptions{Mutate: asDave})
		if err != nil {
			t.Fatal(err)
		}
		if acs != bURLs.acs {
			t.Fatalf("IdP answers to %s, want B's ACS", acs)
		}
		wantRefusal(t, b, demo.OrgID, b.post(acsOf(demo.OrgID), form), "Destination")
		// Control: the same response is good for B.
		if p := b.post(acs, form); p.status != http.StatusSeeOther {
			t.Fatalf("control at B's ACS: %d\n%s", p.status, p.body)
		}
		if h := signedIn(t, b); h["X-Sso-Org"] != orgB || h["X-Sso-Email"] != orgBEmail {
			t.Errorf("control signed in as %v", h)
		}
	})

	for name, c := range map[string]struct {
		opts demoidp.RespondOptions
		want string
	}{
		"A's request answered for B's audience": {demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Conditions.AudienceRestrictions[0].Audience.Value = bURLs.entity
		}}, "audience"},
		"A's request answered for B's recipient": {demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = bURLs.acs
		}}, "recipient"},
		"A's request answered for B's destination": {demoidp.RespondOptions{MutateResponse: func(r *saml.Response) {
			r.Destination = bURLs.acs
		}}, "Destination"},
		"A's request answered for all of B's SP": {demoidp.RespondOptions{
			Mutate: func(a *saml.Assertion) {
				a.Conditions.AudienceRestrictions[0].Audience.Value = bURLs.entity
				a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = bURLs.acs
			},
			MutateResponse: func(r *saml.Response) { r.Destination = bURLs.acs },
		}, "Destination"},
		"A's IdP asserting an email of B's domain": {demoidp.RespondOptions{Mutate: asDave}, "outside the org's verified domains"},
	} {
		t.Run(name, func(t *testing.T) {
			b := newBrowser(t)
			acs, form := attackResponse(t, b, env.IdP, c.opts)
			wantRefusal(t, b, demo.OrgID, b.post(acs, form), c.want)
		})
	}

	t.Run("B's IdP asserting an email of A's domain", func(t *testing.T) {
		b := newBrowser(t)
		acs, form, err := env.IdP.RespondWith(b.startLogin(orgBEmail, ""), demo.AliceEmail, demoidp.RespondOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantRefusal(t, b, orgB, b.post(acs, form), "outside the org's verified domains")
		assertNoUser(t, orgB, demo.AliceEmail)
	})
}

// TestAttackMultipleAssertions: a second assertion next to a genuinely
// signed one — a copy of it, another genuinely signed assertion, or an
// encrypted one.
func TestAttackMultipleAssertions(t *testing.T) {
	// capture returns a genuine assertion element of a response shaped by
	// opts (for the same IdP and SP).
	capture := func(t *testing.T, opts demoidp.RespondOptions, tag string) *etree.Element {
		var got *etree.Element
		opts.Tamper = func(root *etree.Element) { got = root.FindElement("./" + tag).Copy() }
		b := newBrowser(t)
		attackResponse(t, b, env.IdP, opts)
		if got == nil {
			t.Fatalf("no %s captured", tag)
		}
		return got
	}
	cases := map[string]func(t *testing.T) func(*etree.Element){
		"copy of the signed assertion": func(*testing.T) func(*etree.Element) {
			return func(root *etree.Element) {
				c := root.FindElement("./Assertion").Copy()
				forge(c)
				root.AddChild(c)
			}
		},
		"two genuinely signed assertions": func(t *testing.T) func(*etree.Element) {
			other := capture(t, demoidp.RespondOptions{NoEncryption: true, Signing: demoidp.SignAssertionOnly}, "Assertion")
			return func(root *etree.Element) { root.InsertChildAt(root.FindElement("./Assertion").Index(), other) }
		},
		"an encrypted assertion before a plain one": func(t *testing.T) func(*etree.Element) {
			other := capture(t, demoidp.RespondOptions{Signing: demoidp.SignAssertionOnly}, "EncryptedAssertion")
			return func(root *etree.Element) { root.InsertChildAt(root.FindElement("./Assertion").Index(), other) }
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			tamper := mk(t)
			b := newBrowser(t)
			acs, form := attackResponse(t, b, env.IdP, demoidp.RespondOptions{NoEncryption: true, Signing: demoidp.SignAssertionOnly, Tamper: tamper})
			wantRefusal(t, b, demo.OrgID, b.post(acs, form), "2 assertions")
		})
	}
}

// allocated runs f and returns how many bytes the process allocated
// meanwhile (Caddy runs in this process): expanding an entity or
// inflating a bomb would show here.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestAttackEntityExpansion: billion laughs and an external entity, in a
// DOCTYPE before a genuine response. They are refused before any parser
// sees them, so nothing is expanded.
func TestAttackEntityExpansion(t *testing.T) {
	var laughs strings.Builder
	laughs.WriteString(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">`)
	prev := "lol"
	for i := 1; i <= 9; i++ {
		name := fmt.Sprintf("lol%d", i)
		fmt.Fprintf(&laughs, `<!ENTITY %s "%s">`, name, strings.Repeat("&"+prev+";", 10))
		prev = name
	}
	laughs.WriteString("]>")
	cases := map[string]string{
		"billion laughs":  laughs.String(),
		"external entity": `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`,
	}
	for name, prolog := range cases {
		t.Run(name, func(t *testing.T) {
			b := newBrowser(t)
			acs, form := attackResponse(t, b, env.IdP, demoidp.RespondOptions{
				NoEncryption: true,
				Mutate:       func(a *saml.Assertion) { demoidp.SetAttribute(a, demoidp.AttrDisplayName, "&"+prev+";") },
			})
			raw := decodedResponse(t, form)
			// Reference the entity where the XML allows it: in the
			// display name (escaped by the encoder, unescaped here).
			raw = bytes.Replace(raw, []byte("&amp;"+prev+";"), []byte("&"+prev+";"), 1)
			if name == "external entity" {
				raw = bytes.Replace(raw, []byte("&"+prev+";"), []byte("&xxe;"), 1)
			}
			form.Set("SAMLResponse", base64.StdEncoding.EncodeToString(append([]byte(prolog), raw...)))
			var p page
			if n := allocated(func() { p = b.post(acs, form) }); n > 64<<20 {
				t.Errorf("the refusal allocated %d MiB", n>>20)
			}
			wantRefusal(t, b, demo.OrgID, p, "DOCTYPE")
		})
	}
}

// rawRequest writes head (a request without body, with its blank line) to
// the gateway, then body chunks until the gateway answers or stops
// reading, and returns the status line and how much body it wrote.
func rawRequest(t *testing.T, head string, body io.Reader) (status string, sent int64) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.GatewayURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A bound on the whole exchange: a gateway that waits for the whole
	// declared body never answers.
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	done := make(chan int64, 1)
	if body != nil {
		go func() {
			n, _ := io.Copy(conn, body)
			done <- n
		}()
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	_ = conn.Close() // stops the writer
	if body != nil {
		sent = <-done
	}
	return strings.TrimSpace(line), sent
}

// endless yields chunked-encoded form data without end.
type endless struct{ started bool }

func (e *endless) Read(p []byte) (int, error) {
	chunk := fmt.Sprintf("%x\r\n%s\r\n", 8<<10, strings.Repeat("A", 8<<10))
	if !e.started {
		e.started = true
		chunk = fmt.Sprintf("%x\r\nSAMLResponse=\r\n", len("SAMLResponse=")) + chunk
	}
	if len(p) < len(chunk) {
		return 0, io.ErrShortBuffer
	}
	return copy(p, chunk), nil
}

// TestAttackOversizedBody: the ACS reads at most a bounded body (the
// form limit, 256 KiB of SAMLResponse and some), and answers 413 without
// waiting for the rest — declared or streamed.
func TestAttackOversizedBody(t *testing.T) {
	host := strings.TrimPrefix(env.GatewayURL, "http://")
	path := "/sso/saml/" + demo.OrgID + "/acs"
	t.Run("declared length over the limit, body never sent", func(t *testing.T) {
		status, _ := rawRequest(t, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", path, host, 1<<30), nil)
		if !strings.Contains(status, " 413 ") {
			t.Errorf("got %q, want 413", status)
		}
	})
	t.Run("chunked body without end", func(t *testing.T) {
		var status string
		var sent int64
		n := allocated(func() {
			status, sent = rawRequest(t, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n", path, host), &endless{})
		})
		if !strings.Contains(status, " 413 ") {
			t.Errorf("got %q, want 413", status)
		}
		t.Logf("answered %q after %d KiB were written (socket buffers included); %d MiB allocated", status, sent>>10, n>>20)
		if n > 64<<20 {
			t.Errorf("the refusal allocated %d MiB", n>>20)
		}
	})
	t.Run("SAMLResponse just over its own limit", func(t *testing.T) {
		b := newBrowser(t)
		b.startLogin(demo.AliceEmail, "")
		p := b.post(acsOf(demo.OrgID), url.Values{"SAMLResponse": {strings.Repeat("A", 256<<10+4)}})
		wantRefusal(t, b, demo.OrgID, p, "exceeds")
	})
}

// TestAttackDeflateBomb: the SP accepts the HTTP-POST binding only, and
// never inflates anything. A deflate bomb (128 MiB of XML in 130 KiB) sent
// as the HTTP-Redirect binding would send it — in the query of a GET, in
// the query of a POST, or as a POST's SAMLResponse — is refused without
// being inflated.
func TestAttackDeflateBomb(t *testing.T) {
	// In a query, a URL of 128 MiB in 170 KiB exceeds the header limit
	// (431) before the ACS sees it: a smaller bomb shows what the ACS does.
	bomb, small := deflateBomb(t, 128), deflateBomb(t, 16)

	acs := acsOf(demo.OrgID)
	cases := []struct {
		name   string
		do     func(b *browser) page
		status int
		reason string
	}{
		{"GET with the Redirect binding", func(b *browser) page {
			return b.get(acs + "?SAMLResponse=" + url.QueryEscape(small))
		}, http.StatusMethodNotAllowed, ""},
		{"POST with the bomb in the query", func(b *browser) page {
			return b.post(acs+"?SAMLResponse="+url.QueryEscape(small), url.Values{})
		}, http.StatusBadRequest, ""},
		{"POST with the bomb as SAMLResponse", func(b *browser) page {
			return b.post(acs, url.Values{"SAMLResponse": {bomb}})
		}, http.StatusForbidden, "malformed XML"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBrowser(t)
			b.startLogin(demo.AliceEmail, "")
			var p page
			if n := allocated(func() { p = c.do(b) }); n > 64<<20 {
				t.Errorf("the refusal allocated %d MiB", n>>20)
			}
			if p.status != c.status {
				t.Fatalf("got %d, want %d\n%.400s", p.status, c.status, p.body)
			}
			if c.reason != "" {
				wantRefusal(t, b, demo.OrgID, p, c.reason)
			} else {
				assertSignedOut(t, b)
			}
		})
	}
}

// deflateBomb is what the HTTP-Redirect binding would carry (deflated,
// base64) for a Response of mib MiB, almost all of it blanks.
func deflateBomb(t *testing.T, mib int) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" Destination="`+acsOf(demo.OrgID)+`">`)
	spaces := bytes.Repeat([]byte(" "), 1<<20)
	for i := 0; i < mib; i++ {
		_, _ = w.Write(spaces)
	}
	_, _ = io.WriteString(w, `</samlp:Response>`)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("bomb: %d KiB to send, %d MiB inflated", buf.Len()*4/3>>10, mib)
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// restartGateway stops Caddy, which releases the store, and starts it
// again on the same data directory, as a process restart would.
func restartGateway(t *testing.T) {
	t.Helper()
	if err := caddy.Stop(); err != nil {
		t.Fatalf("stopping: %v", err)
	}
	if err := caddy.Load(env.CaddyConfig(), true); err != nil {
		t.Fatalf("starting again: %v", err)
	}
}

// TestAttackReplayAcrossRestarts: an IdP-initiated response — which no
// outstanding request protects, so only the replay cache does — is
// accepted once, then refused after one and after two restarts of the
// gateway on the same store.
func TestAttackReplayAcrossRestarts(t *testing.T) {
	setUpOrgB(t, true)
	acs, form, err := env.IdP.Unsolicited(orgB, demo.AliceEmail, asDave)
	if err != nil {
		t.Fatal(err)
	}
	first := newBrowser(t)
	if p := first.post(acs, form); p.status != http.StatusSeeOther {
		t.Fatalf("first use: %d\n%s", p.status, p.body)
	}
	signedIn(t, first)

	for restart := 1; restart <= 2; restart++ {
		restartGateway(t)
		signedIn(t, first) // same store: the session is still there
		b := newBrowser(t)
		wantRefusal(t, b, orgB, b.post(acs, form), "already been used")
	}
	// Control: a fresh response is still accepted after the restarts.
	acs, fresh, err := env.IdP.Unsolicited(orgB, demo.AliceEmail, asDave)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	if p := b.post(acs, fresh); p.status != http.StatusSeeOther {
		t.Fatalf("fresh response after restarts: %d\n%s", p.status, p.body)
	}
	signedIn(t, b)
}
