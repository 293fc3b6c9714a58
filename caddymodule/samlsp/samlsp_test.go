package samlsp

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/ssogate/ssogate/examples/demoidp"
	"github.com/ssogate/ssogate/store"
)

func TestParseResponseIdentity(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, e.org(), nil)
	sessionEnd := time.Now().Add(8 * time.Hour).UTC().Truncate(time.Second)
	encoded, reqID := respond(t, p, e.idp, demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
		// What sloppy IdP configurations send: the login with spaces and
		// capitals.
		demoidp.SetAttribute(a, demoidp.AttrName, "  Alice@Example.COM ")
		a.AuthnStatements[0].SessionNotOnOrAfter = &sessionEnd
	}})
	// The browser flow encrypts to the SP's key: make sure this test covers it.
	if !bytes.Contains(decode(t, encoded), []byte("EncryptedAssertion")) {
		t.Fatal("the demo IdP did not encrypt the assertion")
	}

	id, err := p.ParseResponse(encoded, []string{"some-other-request", reqID})
	if err != nil {
		t.Fatalf("ParseResponse: %v", err)
	}
	// The local part as given, the domain in canonical form.
	if id.Email != "Alice@example.com" {
		t.Errorf("Email = %q, want %q", id.Email, "Alice@example.com")
	}
	if id.ObjectID != aliceOID {
		t.Errorf("ObjectID = %q, want %q", id.ObjectID, aliceOID)
	}
	if id.NameID != aliceEmail {
		t.Errorf("NameID = %q, want %q", id.NameID, aliceEmail)
	}
	if id.DisplayName != aliceName || id.GivenName != "Alice" || id.FamilyName != "Liddell" {
		t.Errorf("names = %q, %q, %q", id.DisplayName, id.GivenName, id.FamilyName)
	}
	if !slices.Equal(id.Groups, aliceGroups) {
		t.Errorf("Groups = %q, want %q", id.Groups, aliceGroups)
	}
	if id.GroupsOverage {
		t.Error("GroupsOverage set without a groups.link claim")
	}
	if id.InResponseTo != reqID {
		t.Errorf("InResponseTo = %q, want %q", id.InResponseTo, reqID)
	}
	// The session may last as long as the IdP says, read with the same
	// clock skew allowance as every other time in the response.
	if want := sessionEnd.Add(MaxClockSkew); !id.SessionNotOnOrAfter.Equal(want) {
		t.Errorf("SessionNotOnOrAfter = %v, want %v", id.SessionNotOnOrAfter, want)
	}
	if id.AssertionID == "" || id.SessionIndex == "" {
		t.Errorf("AssertionID = %q, SessionIndex = %q; want both", id.AssertionID, id.SessionIndex)
	}
}

func TestParseResponseWithoutSessionNotOnOrAfter(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, e.org(), nil)
	encoded, reqID := respond(t, p, e.idp, demoidp.RespondOptions{})
	id, err := p.ParseResponse(encoded, []string{reqID})
	if err != nil {
		t.Fatalf("ParseResponse: %v", err)
	}
	if !id.SessionNotOnOrAfter.IsZero() {
		t.Errorf("SessionNotOnOrAfter = %v, want zero when the IdP sets none", id.SessionNotOnOrAfter)
	}
}

// without removes the guide's attributes, so that only the aliases a test
// sets can supply the identity.
func without(a *saml.Assertion, names ...string) {
	for _, n := range names {
		demoidp.SetAttribute(a, n)
	}
}

func TestAttributeAliases(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, e.org(), nil)
	guide := []string{demoidp.AttrObjectID, demoidp.AttrName, demoidp.AttrDisplayName, demoidp.AttrGroups, demoidp.AttrFirstName, demoidp.AttrLastName}

	tests := []struct {
		name   string
		mutate func(*saml.Assertion)
		check  func(t *testing.T, id *Identity)
	}{{
		name: "Entra ID claim URIs",
		mutate: func(a *saml.Assertion) {
			without(a, guide...)
			// Entra's default NameID is a persistent opaque ID: the email
			// must come from the claim, not from a NameID fallback.
			a.Subject.NameID.Value = "AbCdEf-persistent-123"
			demoidp.SetAttribute(a, "http://schemas.microsoft.com/identity/claims/objectidentifier", "6f1c1c3e-0000-4000-8000-000000000001")
			demoidp.SetAttribute(a, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", " Alice@Example.com")
			demoidp.SetAttribute(a, "http://schemas.microsoft.com/identity/claims/displayname", "Alice (Entra)")
			demoidp.SetAttribute(a, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", "Alicia")
			demoidp.SetAttribute(a, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", "L.")
			demoidp.SetAttribute(a, "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", "11111111-aaaa", "22222222-bbbb")
		},
		check: func(t *testing.T, id *Identity) {
			if id.Email != "Alice@example.com" || id.ObjectID != "6f1c1c3e-0000-4000-8000-000000000001" ||
				id.DisplayName != "Alice (Entra)" || id.GivenName != "Alicia" || id.FamilyName != "L." {
				t.Errorf("identity = %+v", id)
			}
			if !slices.Equal(id.Groups, []string{"11111111-aaaa", "22222222-bbbb"}) {
				t.Errorf("Groups = %q", id.Groups)
			}
			if id.NameID != "AbCdEf-persistent-123" {
				t.Errorf("NameID = %q", id.NameID)
			}
		},
	}, {
		name: "names differ from the guide's only in case",
		mutate: func(a *saml.Assertion) {
			without(a, demoidp.AttrDisplayName, demoidp.AttrObjectID)
			demoidp.SetAttribute(a, "DisplayName", "Alice Cased")
			demoidp.SetAttribute(a, "ObjectIdentifier", "oid-cased")
		},
		check: func(t *testing.T, id *Identity) {
			if id.DisplayName != "Alice Cased" || id.ObjectID != "oid-cased" {
				t.Errorf("DisplayName = %q, ObjectID = %q", id.DisplayName, id.ObjectID)
			}
		},
	}, {
		name: "the guide's name wins over an alias",
		mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "other@example.org")
		},
		check: func(t *testing.T, id *Identity) {
			if id.Email != aliceEmail {
				t.Errorf("Email = %q, want the name attribute's %q", id.Email, aliceEmail)
			}
		},
	}, {
		name: "groups from several aliases are merged without duplicates or blanks",
		mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", "Engineering", " ", "Sales")
		},
		check: func(t *testing.T, id *Identity) {
			want := append(slices.Clone(aliceGroups), "Sales")
			if !slices.Equal(id.Groups, want) {
				t.Errorf("Groups = %q, want %q", id.Groups, want)
			}
		},
	}, {
		name: "Entra group overage claim",
		mutate: func(a *saml.Assertion) {
			without(a, demoidp.AttrGroups)
			demoidp.SetAttribute(a, "http://schemas.microsoft.com/claims/groups.link",
				"https://graph.windows.net/tenant/users/6f1c/getMemberObjects")
		},
		check: func(t *testing.T, id *Identity) {
			if !id.GroupsOverage {
				t.Error("GroupsOverage not set")
			}
			if len(id.Groups) != 0 {
				t.Errorf("Groups = %q, want none", id.Groups)
			}
		},
	}, {
		name: "email from the NameID when no attribute names it",
		mutate: func(a *saml.Assertion) {
			without(a, demoidp.AttrName)
			a.Subject.NameID.Value = "  Alice@EXAMPLE.com\n"
		},
		check: func(t *testing.T, id *Identity) {
			if id.Email != "Alice@example.com" {
				t.Errorf("Email = %q, want %q", id.Email, "Alice@example.com")
			}
			if id.NameID != "Alice@EXAMPLE.com" {
				t.Errorf("NameID = %q, want it trimmed", id.NameID)
			}
		},
	}, {
		name: "ObjectID falls back to a persistent NameID",
		mutate: func(a *saml.Assertion) {
			without(a, demoidp.AttrObjectID)
			a.Subject.NameID.Format = string(saml.PersistentNameIDFormat)
			a.Subject.NameID.Value = "AAdzZWNyZXQxeyJ0"
		},
		check: func(t *testing.T, id *Identity) {
			if id.ObjectID != "AAdzZWNyZXQxeyJ0" || id.Email != aliceEmail {
				t.Errorf("ObjectID = %q, Email = %q; want the persistent NameID and the name attribute", id.ObjectID, id.Email)
			}
		},
	}, {
		// pysaml2's and SimpleSAMLphp's default: a new NameID at every
		// sign-in, which locked the user out on the second.
		name: "a transient NameID is no stable ID",
		mutate: func(a *saml.Assertion) {
			without(a, demoidp.AttrObjectID)
			a.Subject.NameID.Format = string(saml.TransientNameIDFormat)
			a.Subject.NameID.Value = "_f2b8ce8a0b6a4f1c"
		},
		check: func(t *testing.T, id *Identity) {
			if id.ObjectID != "" || id.NameID != "_f2b8ce8a0b6a4f1c" || id.Email != aliceEmail {
				t.Errorf("ObjectID = %q, NameID = %q, Email = %q; want no ObjectID", id.ObjectID, id.NameID, id.Email)
			}
		},
	}, {
		name: "an email or unspecified NameID is no stable ID either",
		mutate: func(a *saml.Assertion) {
			without(a, demoidp.AttrObjectID)
			a.Subject.NameID.Format = string(saml.UnspecifiedNameIDFormat)
		},
		check: func(t *testing.T, id *Identity) {
			if id.ObjectID != "" || id.Email != aliceEmail {
				t.Errorf("ObjectID = %q, Email = %q", id.ObjectID, id.Email)
			}
		},
	}, {
		name: "a transient NameID does not hide the objectidentifier",
		mutate: func(a *saml.Assertion) {
			a.Subject.NameID.Format = string(saml.TransientNameIDFormat)
			a.Subject.NameID.Value = "_0123"
		},
		check: func(t *testing.T, id *Identity) {
			if id.ObjectID != aliceOID {
				t.Errorf("ObjectID = %q, want %q", id.ObjectID, aliceOID)
			}
		},
	}, {
		// ADFS and hand-made Entra claims put the display name in
		// claims/name; Entra puts the UPN there, which may not be mail.
		name: "claims/name that is a display name does not win over claims/emailaddress",
		mutate: func(a *saml.Assertion) {
			without(a, demoidp.AttrName)
			demoidp.SetAttribute(a, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "Alice Liddell")
			demoidp.SetAttribute(a, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", aliceEmail)
		},
		check: func(t *testing.T, id *Identity) {
			if id.Email != aliceEmail {
				t.Errorf("Email = %q, want the emailaddress claim's %q", id.Email, aliceEmail)
			}
		},
	}, {
		name: "claims/emailaddress wins over a UPN in claims/name",
		mutate: func(a *saml.Assertion) {
			without(a, demoidp.AttrName)
			demoidp.SetAttribute(a, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "alice@example.onmicrosoft.com")
			demoidp.SetAttribute(a, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", aliceEmail)
		},
		check: func(t *testing.T, id *Identity) {
			if id.Email != aliceEmail {
				t.Errorf("Email = %q, want %q", id.Email, aliceEmail)
			}
		},
	}, {
		name: "claims/name alone, an address, still names the user",
		mutate: func(a *saml.Assertion) {
			without(a, demoidp.AttrName)
			demoidp.SetAttribute(a, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", aliceEmail)
		},
		check: func(t *testing.T, id *Identity) {
			if id.Email != aliceEmail {
				t.Errorf("Email = %q, want %q", id.Email, aliceEmail)
			}
		},
	}, {
		name: "isMemberOf by its basic name and its urn:oid name",
		mutate: func(a *saml.Assertion) {
			without(a, demoidp.AttrGroups)
			demoidp.SetAttribute(a, "isMemberOf", "Engineering")
			demoidp.SetAttribute(a, "urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "Sales")
		},
		check: func(t *testing.T, id *Identity) {
			if !slices.Equal(id.Groups, []string{"Engineering", "Sales"}) {
				t.Errorf("Groups = %q", id.Groups)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded, reqID := respond(t, p, e.idp, demoidp.RespondOptions{Mutate: tt.mutate})
			id, err := p.ParseResponse(encoded, []string{reqID})
			if err != nil {
				t.Fatalf("ParseResponse: %v", err)
			}
			tt.check(t, id)
		})
	}
}

// TestIdentityRefusals: assertions that crewjam accepts but that do not
// name a usable user. The control is the plain response, accepted by
// TestParseResponseIdentity.
func TestIdentityRefusals(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, e.org(), nil)
	tests := []struct {
		name   string
		mutate func(*saml.Assertion)
		want   string
	}{{
		name: "no email anywhere",
		mutate: func(a *saml.Assertion) {
			without(a, demoidp.AttrName)
			a.Subject.NameID.Value = "opaque-id-42"
		},
		want: "names no email",
	}, {
		name: "login is not an email address",
		mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, demoidp.AttrName, "alice")
		},
		want: "not an email address",
	}, {
		// SPEC §3.3: an empty NameID is refused even when the attributes
		// name the user.
		name: "empty NameID",
		mutate: func(a *saml.Assertion) {
			a.Subject.NameID.Value = ""
		},
		want: "empty NameID",
	}, {
		name: "blank NameID",
		mutate: func(a *saml.Assertion) {
			a.Subject.NameID.Value = " \n\t"
		},
		want: "empty NameID",
	}, {
		name: "empty NameID and no attributes",
		mutate: func(a *saml.Assertion) {
			a.AttributeStatements = nil
			a.Subject.NameID.Value = ""
		},
		want: "empty NameID",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded, reqID := respond(t, p, e.idp, demoidp.RespondOptions{Mutate: tt.mutate})
			if _, err := p.sp.ParseXMLResponse(decode(t, encoded), []string{reqID}, p.sp.AcsURL); err != nil {
				t.Fatalf("crewjam refuses it already (%v): the case does not test identity mapping", describe(err))
			}
			_, err := p.ParseResponse(encoded, []string{reqID})
			wantRefused(t, err, tt.want)
		})
	}
}

// TestCommentInNameID is the comment-truncation attack (CVE-2017-11427 and
// kin): exclusive C14N drops comments, so a comment added inside a signed
// text node keeps the signature valid, and a parser that reads only the
// first text node would see another user. The whole text must be read.
func TestCommentInNameID(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, e.org(), nil)
	const registered = "alice@example.com.evil.example"
	split := func(el *etree.Element) {
		if el.Text() != registered {
			return
		}
		el.SetText("")
		el.CreateText(aliceEmail)
		el.CreateComment("")
		el.CreateText(strings.TrimPrefix(registered, aliceEmail))
	}
	encoded, reqID := respond(t, p, e.idp, demoidp.RespondOptions{
		NoEncryption: true,
		Mutate: func(a *saml.Assertion) {
			a.Subject.NameID.Value = registered
			demoidp.SetAttribute(a, demoidp.AttrName, registered)
		},
		Tamper: func(root *etree.Element) {
			a := child(root, "Assertion")
			for _, el := range append(a.FindElements(".//NameID"), a.FindElements(".//AttributeValue")...) {
				split(el)
			}
		},
	})
	if !bytes.Contains(decode(t, encoded), []byte(aliceEmail+"<!---->")) {
		t.Fatal("the tampering did not happen")
	}
	id, err := p.ParseResponse(encoded, []string{reqID})
	if err != nil {
		t.Fatalf("ParseResponse: %v", err)
	}
	if id.Email != registered || id.NameID != registered {
		t.Errorf("Email = %q, NameID = %q; want %q", id.Email, id.NameID, registered)
	}
}

// Helpers for Tamper functions.

func child(el *etree.Element, tag string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == tag {
			return c
		}
	}
	return nil
}

func childIndex(el *etree.Element, tag string) int {
	c := child(el, tag)
	if c == nil {
		return -1
	}
	return c.Index()
}

// hideInExtensions puts a copy of the response's (encrypted) assertion in
// a samlp:Extensions element, where the schema allows any content and
// a naive SP may pick it up.
func hideInExtensions(tag string) func(*etree.Element) {
	return func(root *etree.Element) {
		ext := etree.NewElement("samlp:Extensions")
		ext.AddChild(child(root, tag).Copy())
		root.InsertChildAt(childIndex(root, "Issuer")+1, ext)
	}
}

func appendCopy(tag string) func(*etree.Element) {
	return func(root *etree.Element) {
		root.AddChild(child(root, tag).Copy())
	}
}

// validity returns a Mutate function that sets the assertion's time window
// relative to the moment it is made.
func validity(issued, notBefore, notOnOrAfter, confirmationNotOnOrAfter time.Duration) func(*saml.Assertion) {
	return func(a *saml.Assertion) {
		now := time.Now().UTC()
		a.IssueInstant = now.Add(issued)
		a.Conditions.NotBefore = now.Add(notBefore)
		a.Conditions.NotOnOrAfter = now.Add(notOnOrAfter)
		a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotOnOrAfter = now.Add(confirmationNotOnOrAfter)
	}
}

// responseIssued sets the Response's IssueInstant, d from now.
func responseIssued(d time.Duration) func(*saml.Response) {
	return func(r *saml.Response) { r.IssueInstant = time.Now().UTC().Add(d) }
}

// confirmationNotBefore sets the NotBefore of the bearer confirmation,
// which an IdP should not send but some do.
func confirmationNotBefore(d time.Duration) func(*saml.Assertion) {
	return func(a *saml.Assertion) {
		a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotBefore = time.Now().UTC().Add(d)
	}
}

// authn sets the AuthnInstant, and the SessionNotOnOrAfter if session is
// set, from now.
func authn(instant time.Duration, session *time.Duration) func(*saml.Assertion) {
	return func(a *saml.Assertion) {
		now := time.Now().UTC()
		a.AuthnStatements[0].AuthnInstant = now.Add(instant)
		if session != nil {
			end := now.Add(*session)
			a.AuthnStatements[0].SessionNotOnOrAfter = &end
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestPolicyRefusals checks each refusal against a control response that
// differs only in the point under test and is accepted, and that the
// refusal names that point.
func TestPolicyRefusals(t *testing.T) {
	e := newEnv(t)
	const s = time.Second
	other := spURLs("globex")

	tests := []struct {
		name    string
		control demoidp.RespondOptions
		// attack turns a copy of the control's options into the refused
		// response's; recode then alters the encoded response.
		attack func(o *demoidp.RespondOptions)
		recode func(t *testing.T, encoded string) string
		// ids replaces the request IDs this browser has outstanding.
		ids  func(requestID string) []string
		want string
		// ours marks policy beyond crewjam's: crewjam alone must accept
		// the attack, or the case would not show that our check works.
		ours bool
	}{{
		name: "DOCTYPE",
		recode: func(t *testing.T, enc string) string {
			return base64.StdEncoding.EncodeToString(append([]byte("<!DOCTYPE Response>\n"), decode(t, enc)...))
		},
		want: "DOCTYPE",
	}, {
		name: "DOCTYPE with an entity, lower-case",
		recode: func(t *testing.T, enc string) string {
			return base64.StdEncoding.EncodeToString(append([]byte(`<!doctype r [<!ENTITY x "y">]>`), decode(t, enc)...))
		},
		want: "DOCTYPE",
	}, {
		// A DOCTYPE the byte search cannot see. It must not get through by
		// being parsed as UTF-16 later on.
		name: "DOCTYPE in UTF-16",
		recode: func(t *testing.T, enc string) string {
			doc := append([]byte(`<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r>`), decode(t, enc)...)
			u16 := []byte{0xff, 0xfe}
			for _, b := range doc {
				u16 = append(u16, b, 0)
			}
			return base64.StdEncoding.EncodeToString(u16)
		},
		want: "malformed XML",
	}, {
		name:    "second assertion after the first",
		control: demoidp.RespondOptions{NoEncryption: true},
		attack:  func(o *demoidp.RespondOptions) { o.Tamper = appendCopy("Assertion") },
		want:    "2 assertions",
	}, {
		name:    "second assertion hidden in Extensions",
		control: demoidp.RespondOptions{NoEncryption: true},
		attack:  func(o *demoidp.RespondOptions) { o.Tamper = hideInExtensions("Assertion") },
		want:    "2 assertions",
	}, {
		// The response is unsigned, so the copy does not break a signature:
		// only the assertion count stands in the way.
		name:    "second assertion hidden in Extensions of an unsigned response",
		control: demoidp.RespondOptions{NoEncryption: true, Signing: demoidp.SignAssertionOnly},
		attack:  func(o *demoidp.RespondOptions) { o.Tamper = hideInExtensions("Assertion") },
		want:    "2 assertions",
	}, {
		name:   "second encrypted assertion",
		attack: func(o *demoidp.RespondOptions) { o.Tamper = appendCopy("EncryptedAssertion") },
		want:   "2 assertions",
	}, {
		name:   "encrypted assertion hidden in Extensions",
		attack: func(o *demoidp.RespondOptions) { o.Tamper = hideInExtensions("EncryptedAssertion") },
		want:   "2 assertions",
	}, {
		name: "no assertion",
		attack: func(o *demoidp.RespondOptions) {
			o.Tamper = func(root *etree.Element) { root.RemoveChild(child(root, "EncryptedAssertion")) }
		},
		want: "0 assertions",
	}, {
		name:    "no Destination on an unsigned Response",
		control: demoidp.RespondOptions{Signing: demoidp.SignAssertionOnly, NoEncryption: true},
		attack: func(o *demoidp.RespondOptions) {
			o.MutateResponse = func(r *saml.Response) { r.Destination = "" }
		},
		want: "Destination",
		ours: true,
	}, {
		name: "no Destination on a signed Response",
		attack: func(o *demoidp.RespondOptions) {
			o.MutateResponse = func(r *saml.Response) { r.Destination = "" }
		},
		want: "Destination",
	}, {
		name: "Destination of another organization",
		attack: func(o *demoidp.RespondOptions) {
			o.MutateResponse = func(r *saml.Response) { r.Destination = other.ACSURL }
		},
		want: "Destination",
	}, {
		// Removing it breaks the Response signature, but the precheck runs
		// first and must say why.
		name: "no Issuer on the Response",
		attack: func(o *demoidp.RespondOptions) {
			o.Tamper = func(root *etree.Element) { root.RemoveChild(child(root, "Issuer")) }
		},
		want: "Issuer",
	}, {
		name:    "no Issuer on an unsigned Response",
		control: demoidp.RespondOptions{Signing: demoidp.SignAssertionOnly, NoEncryption: true},
		attack: func(o *demoidp.RespondOptions) {
			o.Tamper = func(root *etree.Element) { root.RemoveChild(child(root, "Issuer")) }
		},
		want: "Issuer",
		ours: true,
	}, {
		name:    "two Issuers on an unsigned Response",
		control: demoidp.RespondOptions{Signing: demoidp.SignAssertionOnly, NoEncryption: true},
		attack: func(o *demoidp.RespondOptions) {
			o.Tamper = func(root *etree.Element) {
				root.InsertChildAt(childIndex(root, "Issuer"), child(root, "Issuer").Copy())
			}
		},
		want: "exactly one Issuer",
	}, {
		name:    "an empty Issuer before the real one",
		control: demoidp.RespondOptions{Signing: demoidp.SignAssertionOnly, NoEncryption: true},
		attack: func(o *demoidp.RespondOptions) {
			o.Tamper = func(root *etree.Element) {
				empty := child(root, "Issuer").Copy()
				empty.SetText("")
				root.InsertChildAt(childIndex(root, "Issuer"), empty)
			}
		},
		want: "exactly one Issuer",
	}, {
		name:    "a blank Issuer",
		control: demoidp.RespondOptions{Signing: demoidp.SignAssertionOnly, NoEncryption: true},
		attack: func(o *demoidp.RespondOptions) {
			o.Tamper = func(root *etree.Element) { child(root, "Issuer").SetText(" \n ") }
		},
		want: "exactly one Issuer",
	}, {
		name: "Response Issuer of another IdP",
		attack: func(o *demoidp.RespondOptions) {
			o.MutateResponse = func(r *saml.Response) { r.Issuer.Value = "https://evil.example" }
		},
		want: "issuer",
	}, {
		name: "assertion Issuer of another IdP",
		attack: func(o *demoidp.RespondOptions) {
			o.Mutate = func(a *saml.Assertion) { a.Issuer.Value = "https://evil.example" }
		},
		want: "issuer",
	}, {
		name:   "SHA-1 signature",
		attack: func(o *demoidp.RespondOptions) { o.SignatureMethod = dsig.RSASHA1SignatureMethod },
		want:   "sha1",
	}, {
		name:    "SHA-1 signature on the assertion only",
		control: demoidp.RespondOptions{Signing: demoidp.SignAssertionOnly, NoEncryption: true},
		attack:  func(o *demoidp.RespondOptions) { o.SignatureMethod = dsig.RSASHA1SignatureMethod },
		want:    "sha1",
	}, {
		name:   "unsigned",
		attack: func(o *demoidp.RespondOptions) { o.Signing = demoidp.SignNothing },
		want:   "signature",
	}, {
		name: "signed content changed after signing",
		attack: func(o *demoidp.RespondOptions) {
			o.NoEncryption = true
			o.Signing = demoidp.SignAssertionOnly
			o.Tamper = func(root *etree.Element) {
				for _, av := range child(root, "Assertion").FindElements(".//AttributeValue") {
					if av.Text() == aliceEmail {
						av.SetText("mallory@example.com")
					}
				}
			}
		},
		want: "signature",
	}, {
		name: "audience of another organization",
		attack: func(o *demoidp.RespondOptions) {
			o.Mutate = func(a *saml.Assertion) { a.Conditions.AudienceRestrictions[0].Audience.Value = other.EntityID }
		},
		want: "audience",
	}, {
		name: "recipient of another organization",
		attack: func(o *demoidp.RespondOptions) {
			o.Mutate = func(a *saml.Assertion) {
				a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = other.ACSURL
			}
		},
		want: "recipient",
	}, {
		name: "status not Success",
		attack: func(o *demoidp.RespondOptions) {
			o.MutateResponse = func(r *saml.Response) { r.Status.StatusCode.Value = saml.StatusRequester }
		},
		want: "status",
	}, {
		name: "answers a request of another browser",
		ids:  func(string) []string { return []string{"id-of-another-browser"} },
		want: "request",
	}, {
		name: "no outstanding request",
		ids:  func(string) []string { return nil },
		want: "request",
	}, {
		// crewjam allows 180 s of skew past NotOnOrAfter, SPEC §3.3 90 s.
		name:    "expired 120 s ago",
		control: demoidp.RespondOptions{Mutate: validity(0, -150*s, -30*s, 60*s)},
		attack:  func(o *demoidp.RespondOptions) { o.Mutate = validity(0, -150*s, -120*s, 60*s) },
		want:    "assertion expired",
		ours:    true,
	}, {
		name:    "subject confirmation expired 120 s ago",
		control: demoidp.RespondOptions{Mutate: validity(0, -150*s, 60*s, -30*s)},
		attack:  func(o *demoidp.RespondOptions) { o.Mutate = validity(0, -150*s, 60*s, -120*s) },
		want:    "subject confirmation expired",
		ours:    true,
	}, {
		name:   "expired long ago",
		attack: func(o *demoidp.RespondOptions) { o.Mutate = validity(0, -time.Hour, -10*time.Minute, 60*s) },
		want:   "expired",
	}, {
		name:    "not valid for another 120 s",
		control: demoidp.RespondOptions{Mutate: validity(0, 30*s, 200*s, 200*s)},
		attack:  func(o *demoidp.RespondOptions) { o.Mutate = validity(0, 120*s, 200*s, 200*s) },
		want:    "not yet valid",
		ours:    true,
	}, {
		name:    "issued 120 s in the future",
		control: demoidp.RespondOptions{Mutate: validity(30*s, 0, 200*s, 200*s)},
		attack:  func(o *demoidp.RespondOptions) { o.Mutate = validity(120*s, 0, 200*s, 200*s) },
		want:    "assertion IssueInstant",
		ours:    true,
	}, {
		name:    "assertion issued 120 s ago",
		control: demoidp.RespondOptions{Mutate: validity(-60*s, -60*s, 200*s, 200*s)},
		attack:  func(o *demoidp.RespondOptions) { o.Mutate = validity(-120*s, -60*s, 200*s, 200*s) },
		want:    "expired",
	}, {
		name:    "response issued 120 s in the future",
		control: demoidp.RespondOptions{MutateResponse: responseIssued(30 * s)},
		attack:  func(o *demoidp.RespondOptions) { o.MutateResponse = responseIssued(120 * s) },
		want:    "response IssueInstant",
		ours:    true,
	}, {
		name:    "response issued 120 s ago",
		control: demoidp.RespondOptions{MutateResponse: responseIssued(-60 * s)},
		attack:  func(o *demoidp.RespondOptions) { o.MutateResponse = responseIssued(-120 * s) },
		want:    "IssueInstant",
	}, {
		name:    "subject confirmation not valid for another 120 s",
		control: demoidp.RespondOptions{Mutate: confirmationNotBefore(30 * s)},
		attack:  func(o *demoidp.RespondOptions) { o.Mutate = confirmationNotBefore(120 * s) },
		want:    "subject confirmation not yet valid",
		ours:    true,
	}, {
		name:    "authenticated 120 s in the future",
		control: demoidp.RespondOptions{Mutate: authn(30*s, nil)},
		attack:  func(o *demoidp.RespondOptions) { o.Mutate = authn(120*s, nil) },
		want:    "AuthnInstant",
		ours:    true,
	}, {
		name:    "no AuthnInstant",
		control: demoidp.RespondOptions{Mutate: authn(-time.Hour, nil)},
		attack: func(o *demoidp.RespondOptions) {
			o.Mutate = func(a *saml.Assertion) { a.AuthnStatements[0].AuthnInstant = time.Time{} }
		},
		want: "no AuthnInstant",
		ours: true,
	}, {
		// Answered 500 once, after the sign-in had been recorded.
		name:    "IdP session ended 10 minutes ago",
		control: demoidp.RespondOptions{Mutate: authn(-time.Hour, ptr(10*time.Minute))},
		attack:  func(o *demoidp.RespondOptions) { o.Mutate = authn(-time.Hour, ptr(-10*time.Minute)) },
		want:    "session has ended",
		ours:    true,
	}, {
		// Within the skew allowance, but less than MinSessionTime left.
		name:    "IdP session ended 40 s ago",
		control: demoidp.RespondOptions{Mutate: authn(-time.Hour, ptr(-20*s))},
		attack:  func(o *demoidp.RespondOptions) { o.Mutate = authn(-time.Hour, ptr(-40*s)) },
		want:    "session has ended",
		ours:    true,
	}, {
		name: "Success with a nested AuthnFailed",
		control: demoidp.RespondOptions{MutateResponse: func(r *saml.Response) {
			r.Status.StatusCode.StatusCode = &saml.StatusCode{Value: saml.StatusSuccess}
		}},
		attack: func(o *demoidp.RespondOptions) {
			o.MutateResponse = func(r *saml.Response) {
				r.Status.StatusCode.StatusCode = &saml.StatusCode{Value: saml.StatusAuthnFailed}
			}
		},
		want: "level 2 StatusCode",
		ours: true,
	}, {
		name:    "Success with a nested RequestDenied, response unsigned",
		control: demoidp.RespondOptions{Signing: demoidp.SignAssertionOnly, NoEncryption: true},
		attack: func(o *demoidp.RespondOptions) {
			o.MutateResponse = func(r *saml.Response) {
				r.Status.StatusCode.StatusCode = &saml.StatusCode{Value: saml.StatusRequestDenied}
			}
		},
		want: "level 2 StatusCode",
		ours: true,
	}, {
		name:    "a second Status before the real one",
		control: demoidp.RespondOptions{Signing: demoidp.SignAssertionOnly, NoEncryption: true},
		attack: func(o *demoidp.RespondOptions) {
			o.Tamper = func(root *etree.Element) {
				bad := child(root, "Status").Copy()
				child(bad, "StatusCode").CreateAttr("Value", saml.StatusResponder)
				root.InsertChildAt(childIndex(root, "Status"), bad)
			}
		},
		want: "exactly one Status",
		ours: true,
	}, {
		name:    "two StatusCodes",
		control: demoidp.RespondOptions{Signing: demoidp.SignAssertionOnly, NoEncryption: true},
		attack: func(o *demoidp.RespondOptions) {
			o.Tamper = func(root *etree.Element) {
				st := child(root, "Status")
				bad := child(st, "StatusCode").Copy()
				bad.CreateAttr("Value", saml.StatusResponder)
				st.InsertChildAt(0, bad)
			}
		},
		want: "exactly one StatusCode",
	}, {
		name:   "not base64",
		recode: func(_ *testing.T, enc string) string { return enc[:40] + "!*" + enc[40:] },
		want:   "not base64",
	}, {
		name:   "text, not XML",
		recode: func(_ *testing.T, _ string) string { return base64.StdEncoding.EncodeToString([]byte("hello")) },
		want:   "not a samlp:Response",
	}, {
		name: "malformed XML",
		recode: func(t *testing.T, enc string) string {
			raw := decode(t, enc)
			return base64.StdEncoding.EncodeToString(raw[:len(raw)-10])
		},
		want: "malformed XML",
	}, {
		name: "root is not a Response",
		recode: func(t *testing.T, enc string) string {
			raw := bytes.Replace(decode(t, enc), []byte("<samlp:Response "), []byte("<samlp:LogoutResponse "), 1)
			raw = bytes.Replace(raw, []byte("</samlp:Response>"), []byte("</samlp:LogoutResponse>"), 1)
			return base64.StdEncoding.EncodeToString(raw)
		},
		want: "not a samlp:Response",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.provider(t, e.org(), nil)
			encoded, reqID := respond(t, p, e.idp, tt.control)
			if _, err := p.ParseResponse(encoded, []string{reqID}); err != nil {
				t.Fatalf("control refused: %v", err)
			}

			opts := tt.control
			if tt.attack != nil {
				tt.attack(&opts)
			}
			encoded, reqID = respond(t, p, e.idp, opts)
			if tt.recode != nil {
				encoded = tt.recode(t, encoded)
			}
			ids := []string{reqID}
			if tt.ids != nil {
				ids = tt.ids(reqID)
			}
			_, err := p.ParseResponse(encoded, ids)
			wantRefused(t, err, tt.want)

			if tt.ours {
				if _, err := p.sp.ParseXMLResponse(decode(t, encoded), ids, p.sp.AcsURL); err != nil {
					t.Errorf("crewjam alone refuses it too (%v): the case does not show our policy at work", describe(err))
				}
			}
		})
	}
}

func TestResponseSizeLimit(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, e.org(), nil)
	encoded, reqID := respond(t, p, e.idp, demoidp.RespondOptions{})
	// Browsers and IdPs wrap base64; whitespace counts toward the limit but
	// is not part of the encoding.
	pad := func(n int) string {
		return encoded[:64] + "\r\n" + encoded[64:] + strings.Repeat("\n", n-len(encoded)-2)
	}
	if _, err := p.ParseResponse(pad(MaxResponseSize), []string{reqID}); err != nil {
		t.Fatalf("response of exactly MaxResponseSize refused: %v", err)
	}
	_, err := p.ParseResponse(pad(MaxResponseSize+1), []string{reqID})
	wantRefused(t, err, "exceeds")
}

func TestSigningCertificates(t *testing.T) {
	e := newEnv(t)
	// Same entity ID and SSO URL, another key: a response from it is
	// refused only because of its signature.
	rotated := e.newIdP(t)

	t.Run("key not among the org's certificates", func(t *testing.T) {
		p := e.provider(t, e.org(e.idp), nil)
		encoded, reqID := respond(t, p, e.idp, demoidp.RespondOptions{})
		if _, err := p.ParseResponse(encoded, []string{reqID}); err != nil {
			t.Fatalf("control refused: %v", err)
		}
		for _, signing := range []demoidp.Signing{demoidp.SignResponseAndAssertion, demoidp.SignAssertionOnly, demoidp.SignResponseOnly} {
			encoded, reqID = respond(t, p, rotated, demoidp.RespondOptions{Signing: signing, NoEncryption: true})
			_, err := p.ParseResponse(encoded, []string{reqID})
			wantRefused(t, err, "certificate")
		}
	})

	t.Run("rollover: either of two certificates", func(t *testing.T) {
		for _, org := range []*store.Org{e.org(e.idp, rotated), e.org(rotated, e.idp)} {
			p := e.provider(t, org, nil)
			for _, idp := range []*demoidp.IdP{e.idp, rotated} {
				encoded, reqID := respond(t, p, idp, demoidp.RespondOptions{})
				if _, err := p.ParseResponse(encoded, []string{reqID}); err != nil {
					t.Errorf("refused with %d certificates: %v", len(org.IdP.Certificates), err)
				}
			}
		}
	})
}

func TestIdPInitiated(t *testing.T) {
	e := newEnv(t)
	unsolicited := func(t *testing.T) string {
		t.Helper()
		_, form, err := e.idp.UnsolicitedWith(testOrgID, aliceEmail, demoidp.RespondOptions{})
		if err != nil {
			t.Fatalf("UnsolicitedWith: %v", err)
		}
		return form.Get("SAMLResponse")
	}

	t.Run("refused by default", func(t *testing.T) {
		p := e.provider(t, e.org(), nil)
		_, err := p.ParseResponse(unsolicited(t), nil)
		wantRefused(t, err, "request")
		_, err = p.ParseResponse(unsolicited(t), []string{"id-outstanding"})
		wantRefused(t, err, "request")
	})

	t.Run("accepted when the org allows it", func(t *testing.T) {
		org := e.org()
		org.AllowIdPInitiated = true
		p := e.provider(t, org, nil)
		id, err := p.ParseResponse(unsolicited(t), nil)
		if err != nil {
			t.Fatalf("ParseResponse: %v", err)
		}
		if id.InResponseTo != "" || id.Email != aliceEmail {
			t.Errorf("InResponseTo = %q, Email = %q", id.InResponseTo, id.Email)
		}

		// Allowing unsolicited responses does not allow answers to
		// requests this browser did not make.
		encoded, _ := respond(t, p, e.idp, demoidp.RespondOptions{})
		_, err = p.ParseResponse(encoded, nil)
		wantRefused(t, err, "request")
	})
}

func TestReplay(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	st := openStore(t, dir)
	p := e.provider(t, e.org(), st)
	admit := func(t *testing.T, encoded, reqID string) {
		t.Helper()
		id, err := p.ParseResponse(encoded, []string{reqID})
		if err != nil {
			t.Fatalf("fresh response refused: %v", err)
		}
		if _, err := st.ConsumeSignIn(testOrgID, "", id.ReplayKey, id.ReplayUntil); err != nil {
			t.Fatalf("ConsumeSignIn: %v", err)
		}
	}

	encoded, reqID := respond(t, p, e.idp, demoidp.RespondOptions{})
	// Validation alone records nothing: a response the gateway goes on to
	// refuse (say, for the org's admin group) can be retried.
	for range 2 {
		if _, err := p.ParseResponse(encoded, []string{reqID}); err != nil {
			t.Fatalf("validation refused: %v", err)
		}
	}
	admit(t, encoded, reqID)
	_, err := p.ParseResponse(encoded, []string{reqID})
	wantRefused(t, err, "already been used")

	// Another response of the same IdP is not a replay.
	other, otherID := respond(t, p, e.idp, demoidp.RespondOptions{})
	admit(t, other, otherID)

	// The cache is persistent: a restart does not open a replay window.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openStore(t, dir)
	t.Cleanup(func() { _ = st.Close() })
	p = e.provider(t, e.org(), st)
	_, err = p.ParseResponse(encoded, []string{reqID})
	wantRefused(t, err, "already been used")
}

func TestReplayCacheIsPerOrg(t *testing.T) {
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { _ = st.Close() })
	exp := time.Now().Add(5 * time.Minute)
	acme, globex := NewReplayCache(st, "acme"), NewReplayCache(st, "globex")
	if _, err := st.ConsumeSignIn("acme", "", acme.Key("id-1"), exp); err != nil {
		t.Fatal(err)
	}
	if used, err := st.ReplayRecorded(globex.Key("id-1")); err != nil || used {
		t.Errorf("another org's assertion ID counted as a replay: %v %v", used, err)
	}
	if used, err := st.ReplayRecorded(acme.Key("id-1")); err != nil || !used {
		t.Errorf("replay not recorded: %v %v", used, err)
	}
}

func TestNew(t *testing.T) {
	e := newEnv(t)
	valid := e.org()
	if _, err := New(Config{Org: valid, URLs: spURLs(valid.ID), Key: e.spKey, Certificate: e.spCert}); err != nil {
		t.Fatalf("control: %v", err)
	}
	certDER := e.idp.Certificate().Raw
	badDER := "-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString(certDER[:len(certDER)/2]) + "\n-----END CERTIFICATE-----\n"
	keyPEM := strings.ReplaceAll(e.idp.CertificatePEM(), "CERTIFICATE", "PUBLIC KEY")

	tests := []struct {
		name   string
		change func(o *store.Org)
		want   string
	}{
		{"no entity ID", func(o *store.Org) { o.IdP.EntityID = "" }, "incomplete"},
		{"no SSO URL", func(o *store.Org) { o.IdP.SSOURL = "" }, "incomplete"},
		{"no certificate", func(o *store.Org) { o.IdP.Certificates = nil }, "incomplete"},
		{"garbage PEM", func(o *store.Org) { o.IdP.Certificates = []string{"not a certificate"} }, "certificate 1"},
		{"second certificate garbage", func(o *store.Org) { o.IdP.Certificates = append(o.IdP.Certificates, "-----BEGIN") }, "certificate 2"},
		{"PEM of another type", func(o *store.Org) { o.IdP.Certificates = []string{keyPEM} }, "not a PEM certificate"},
		{"truncated DER", func(o *store.Org) { o.IdP.Certificates = []string{badDER} }, "certificate 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org := *valid
			org.IdP.Certificates = slices.Clone(valid.IdP.Certificates)
			tt.change(&org)
			p, err := New(Config{Org: &org, URLs: spURLs(org.ID), Key: e.spKey, Certificate: e.spCert})
			if err == nil || p != nil {
				t.Fatalf("New = %v, %v; want an error", p, err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), org.ID) {
				t.Errorf("error %q does not name the org and %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{URLs: spURLs("acme")}); err == nil {
		t.Error("New without an organization succeeded")
	}
}

func TestAuthnRequest(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, e.org(), nil)
	id, u, err := p.AuthnRequest("relay-xyz")
	if err != nil {
		t.Fatal(err)
	}
	sso, _ := url.Parse(e.idp.SSOURL())
	if u.Scheme != sso.Scheme || u.Host != sso.Host || u.Path != sso.Path {
		t.Errorf("redirect to %s, want the SSO URL %s", u, sso)
	}
	if got := u.Query().Get("RelayState"); got != "relay-xyz" {
		t.Errorf("RelayState = %q", got)
	}
	deflated, err := base64.StdEncoding.DecodeString(u.Query().Get("SAMLRequest"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	if err != nil {
		t.Fatal(err)
	}
	var req saml.AuthnRequest
	if err := xml.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	urls := spURLs(testOrgID)
	if req.ID != id || req.Destination != e.idp.SSOURL() || req.AssertionConsumerServiceURL != urls.ACSURL ||
		req.Issuer == nil || req.Issuer.Value != urls.EntityID || req.ProtocolBinding != saml.HTTPPostBinding {
		t.Errorf("AuthnRequest = ID %q (want %q), Destination %q, ACS %q, binding %q, Issuer %+v",
			req.ID, id, req.Destination, req.AssertionConsumerServiceURL, req.ProtocolBinding, req.Issuer)
	}

	id2, _, err := p.AuthnRequest("")
	if err != nil {
		t.Fatal(err)
	}
	if id2 == id {
		t.Error("two AuthnRequests with the same ID")
	}
	// SAML bindings §3.4.3: RelayState MUST NOT exceed 80 bytes.
	if _, _, err := p.AuthnRequest(strings.Repeat("r", 81)); err == nil {
		t.Error("RelayState of 81 bytes accepted")
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t)
	urls := spURLs(testOrgID)
	md, err := Metadata(urls, e.spKey, e.spCert)
	if err != nil {
		t.Fatal(err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(md, &ed); err != nil {
		t.Fatalf("metadata does not parse: %v", err)
	}
	if ed.EntityID != urls.EntityID || len(ed.SPSSODescriptors) != 1 {
		t.Fatalf("EntityID = %q, %d SP descriptors", ed.EntityID, len(ed.SPSSODescriptors))
	}
	acs := ed.SPSSODescriptors[0].AssertionConsumerServices
	if len(acs) != 1 || acs[0].Location != urls.ACSURL || acs[0].Binding != saml.HTTPPostBinding {
		t.Errorf("ACS endpoints = %+v, want one HTTP-POST at %s", acs, urls.ACSURL)
	}
}

// SP metadata is imported once by an IT admin: a short validUntil made
// pysaml2 refuse it and SimpleSAMLphp stop working two days later.
func TestMetadataDoesNotExpire(t *testing.T) {
	e := newEnv(t)
	md, err := Metadata(spURLs(testOrgID), e.spKey, e.spCert)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(md); err != nil {
		t.Fatal(err)
	}
	for _, el := range append([]*etree.Element{doc.Root()}, doc.Root().FindElements("//*")...) {
		if v := el.SelectAttrValue("validUntil", ""); v != "" {
			t.Errorf("%s has validUntil=%q", el.Tag, v)
		}
	}
	// The metadata schema wants validUntil or cacheDuration on the root.
	if doc.Root().SelectAttrValue("cacheDuration", "") == "" {
		t.Error("root has neither validUntil nor cacheDuration")
	}
}

// TestEncryptionPolicy: every encryption the metadata advertises is
// accepted whatever the IdP signs, and what it does not advertise (CBC)
// only inside a signed Response.
func TestEncryptionPolicy(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, e.org(), nil)
	md, err := Metadata(spURLs(testOrgID), e.spKey, e.spCert)
	if err != nil {
		t.Fatal(err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(md, &ed); err != nil {
		t.Fatal(err)
	}
	var advertised []string
	for _, kd := range ed.SPSSODescriptors[0].KeyDescriptors {
		if kd.Use == "encryption" {
			for _, m := range kd.EncryptionMethods {
				advertised = append(advertised, m.Algorithm)
			}
		}
	}
	var want []string
	for _, m := range AdvertisedEncryption() {
		want = append(want, m.Algorithm)
	}
	if !slices.Equal(advertised, want) {
		t.Fatalf("metadata advertises %q, want %q", advertised, want)
	}
	signings := map[string]demoidp.Signing{
		"assertion signed":              demoidp.SignAssertionOnly,
		"response signed":               demoidp.SignResponseOnly,
		"response and assertion signed": demoidp.SignResponseAndAssertion,
	}
	ciphers := []string{xmlenc.AES256GCM.Algorithm(), xmlenc.AES128GCM.Algorithm(), xmlenc.AES192GCM.Algorithm()}
	for _, c := range ciphers {
		if !slices.Contains(advertised, c) {
			t.Errorf("%s not advertised", c)
		}
	}
	for _, c := range []string{xmlenc.AES128CBC.Algorithm(), xmlenc.AES256CBC.Algorithm()} {
		if slices.Contains(advertised, c) {
			t.Errorf("%s advertised, but refused in a Response that is not signed", c)
		}
		ciphers = append(ciphers, c)
	}
	for _, c := range ciphers {
		for name, signing := range signings {
			t.Run(c[strings.LastIndexByte(c, '#')+1:]+"/"+name, func(t *testing.T) {
				encoded, reqID := respond(t, p, e.idp, demoidp.RespondOptions{Signing: signing, BlockCipher: c})
				if !bytes.Contains(decode(t, encoded), []byte(c)) {
					t.Fatalf("the IdP did not encrypt with %s", c)
				}
				_, err := p.ParseResponse(encoded, []string{reqID})
				if strings.HasSuffix(c, "-cbc") && signing == demoidp.SignAssertionOnly {
					wantRefused(t, err, "RequireSignedResponseForCBC")
					return
				}
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			})
		}
	}
}

func TestEmailHelpers(t *testing.T) {
	if got := NormalizeEmail("  Alice@Example.COM\t"); got != "Alice@example.com" {
		t.Errorf("NormalizeEmail = %q", got)
	}
	for in, want := range map[string]string{
		"alice@example.com":            "example.com",
		"alice@Bücher.DE":              "xn--bcher-kva.de",
		"a@b@example.org":              "", // two addresses are none
		"a@example.org, b@example.org": "",
		"@example.com":                 "",
		"alice@":                       "",
		"alice":                        "",
		"":                             "",
	} {
		if got := EmailDomain(in); got != want {
			t.Errorf("EmailDomain(%q) = %q, want %q", in, got, want)
		}
	}
}
