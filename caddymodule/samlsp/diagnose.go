package samlsp

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/identity"
	"github.com/ssogate/ssogate/store"
)

// Kinds of refusal that crewjam has no class for. ParseResponse's errors
// match one of these or one of crewjam's classes with errors.Is.
var (
	KindTooLarge      = errors.New("response too large")
	KindNoDestination = errors.New("response has no Destination")
	KindIdPStatus     = errors.New("IdP status is not Success")
	KindSessionEnded  = errors.New("IdP session already ended")
	KindNoNameID      = errors.New("empty NameID")
	KindNoEmail       = errors.New("no email")
	KindBadEmail      = errors.New("email is not one address")
	KindReplayed      = errors.New("assertion already used")
)

// Reason is one class of refused sign-in, said so that the IT admin who
// set up the IdP knows what to change there. Code is stable: the attempts
// view and its JSON carry it, and README's troubleshooting table lists
// every one.
type Reason struct {
	Code    string `json:"code"`
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
}

// reasons is the troubleshooting table, by Code (filled in by init and
// never changed after). The gateway's own refusals (after the response
// validated) are here too, so that one table covers every reason a
// sign-in is refused.
var reasons = map[string]Reason{
	"too-large": {Problem: "The response from the identity provider was larger than 256 KiB.",
		Fix: "Usually thousands of group values. Send only the groups assigned to the application (Entra ID: group claim \"Groups assigned to the application\"; Okta: a group filter), or none and use SCIM provisioning."},
	"malformed": {Problem: "What arrived is not a SAML 2.0 Response this gateway can read (bad encoding or XML, a DOCTYPE, or more than one assertion).",
		Fix: "Set the application up as SAML 2.0 with the HTTP-POST binding (not WS-Federation or an artifact), with this organization's Reply URL (ACS URL) from the SP metadata."},
	"idp-status": {Problem: "The identity provider itself refused the sign-in (its response status is not Success).",
		Fix: "Look at the IdP's sign-in log for this user. Most often the user is not assigned to the application: Entra ID → Enterprise applications → the app → Users and groups (error AADSTS50105); Okta → the app → Assignments."},
	"destination": {Problem: "The response is addressed to another URL than this organization's ACS URL, or names none.",
		Fix: "Set the IdP's Reply URL / Assertion Consumer Service URL / Single sign-on URL to exactly the ACS URL in this organization's SP metadata (it ends in /saml/<org>/acs)."},
	"issuer": {Problem: "The response's Issuer is not the IdP entity ID configured here.",
		Fix: "Re-import the IdP's metadata in the SAML step, or correct the IdP entity ID (Entra ID: \"Microsoft Entra Identifier\", https://sts.windows.net/<tenant-id>/; Okta: \"Identity Provider Issuer\")."},
	"signature": {Problem: "The response or assertion is not signed, or its signature does not verify.",
		Fix: "Have the IdP sign the assertion or the whole response (Entra ID: Signing option \"Sign SAML response and assertion\"). If the IdP rewrites the XML after signing (a proxy), sign at the IdP only."},
	"sha1": {Problem: "The response is signed with SHA-1, which this gateway does not accept.",
		Fix: "Set the IdP's signing algorithm to SHA-256 (Entra ID: SAML Signing Certificate → Signing Algorithm SHA-256; Okta: Signature Algorithm RSA-SHA256, Digest SHA256)."},
	"certificate": {Problem: "The response was signed with a certificate that is not configured here, or with one that has expired.",
		Fix: "The IdP's signing certificate changed (rollover). Download the current certificate or Federation Metadata XML and update the SAML step; during a rollover, configure both certificates."},
	"audience": {Problem: "The assertion is meant for another service provider (its Audience is not this organization's entity ID).",
		Fix: "Set the IdP's Identifier (Entity ID) / Audience URI to exactly the entity ID in this organization's SP metadata."},
	"unsolicited": {Problem: "The response answers no sign-in started in this browser: it was started at the IdP (IdP-initiated: My Apps, an app tile, the IdP's \"Test\" button) while IdP-initiated sign-in is off, or in another browser, or long ago.",
		Fix: "Start from the application's sign-in page. To allow starting from the IdP, turn on IdP-initiated sign-in for the organization (read its risk first)."},
	"request-mismatch": {Problem: "The response answers a different sign-in request than the one this browser started.",
		Fix: "Start again from the application's sign-in page in one browser tab. If it persists, check that the IdP returns the request's ID (InResponseTo) unchanged."},
	"not-yet-valid": {Problem: "A time in the response lies in the future by more than 90 seconds: the IdP's clock is ahead of ours.",
		Fix: "Correct the IdP server's clock (NTP). The clock difference is shown with the attempt."},
	"expired": {Problem: "The response is too old: issued more than 90 seconds before it arrived, or a validity period has ended. The IdP's clock may be behind, or the response was posted again later.",
		Fix: "Correct the IdP server's clock (NTP) if the clock difference is large; otherwise start again from the sign-in page rather than reloading or going back."},
	"session-ended": {Problem: "The IdP's session for the user (SessionNotOnOrAfter) ended before the sign-in could begin.",
		Fix: "Lengthen the IdP's session lifetime for this application, and check the IdP's clock."},
	"missing-element": {Problem: "The assertion lacks a part SAML requires (Subject, Conditions, AuthnStatement, an ID or a time).",
		Fix: "Use the IdP's standard SAML 2.0 application template rather than a custom assertion; check custom claim rules."},
	"decryption": {Problem: "The encrypted assertion could not be decrypted, or was encrypted in a way this gateway does not accept (AES-CBC without a signed response, RSA PKCS#1 v1.5, 3DES).",
		Fix: "Upload the encryption certificate from this organization's SP metadata to the IdP and use AES-GCM with RSA-OAEP; or sign the whole response; or turn token encryption off (the connection is already HTTPS)."},
	"unsupported": {Problem: "The assertion uses a SAML feature this gateway does not accept (an unknown condition, a BaseID subject, another SAML version).",
		Fix: "Use the IdP's standard SAML 2.0 settings with a NameID subject."},
	"no-nameid": {Problem: "The assertion's NameID is empty.",
		Fix: "Set a NameID (Entra ID: Unique User Identifier = user.objectid with format Persistent, or user.mail)."},
	"no-email": {Problem: "The assertion names no email address: no email attribute and no address in the NameID.",
		Fix: "Send the user's address: attribute \"email\" or http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress = user.mail (see README's attribute table)."},
	"bad-email": {Problem: "The value sent as the user's email is not one email address.",
		Fix: "Map the email claim to the user's mail attribute (Entra ID: user.mail, not a display name or a guest UPN with #EXT#)."},
	"replayed": {Problem: "This response was already used to sign in.",
		Fix: "Nothing to change at the IdP: the browser posted the same response twice (back button, reload). Start again from the sign-in page."},
	"already-answered": {Problem: "The sign-in request this response answers was already completed or has expired.",
		Fix: "Start again from the sign-in page; if it takes more than a few minutes at the IdP, the request expires."},
	"org-inactive": {Problem: "Single sign-on is not active for this organization.",
		Fix: "Finish the configurator and press Activate (a Test sign-in works before that)."},
	"domain": {Problem: "The asserted email's domain is not a verified domain of this organization.",
		Fix: "Verify the domain in the Domains step, or send the user's primary work address (Entra ID: user.mail rather than a UPN in onmicrosoft.com)."},
	"identity-mismatch": {Problem: "The IdP's stable user ID differs from the one on file for this email (a re-created account, or a NameID that changes at every sign-in).",
		Fix: "Send a persistent NameID or the objectidentifier claim; if the account was really replaced, unlink the old one on the Users page."},
	"deactivated": {Problem: "The user is deactivated by provisioning (SCIM).",
		Fix: "Re-enable the user, or assign them to the application again, in the IdP."},
	"no-groups": {Problem: "The user is not in the admin group, and the IdP sent no groups attribute at all.",
		Fix: "Add a group claim (Entra ID: Attributes & Claims → Add a group claim → Groups assigned to the application, source attribute Group ID; Okta: a Group Attribute Statement named \"groups\"), or provision the admin group with SCIM."},
	"groups-overage": {Problem: "The user is in too many groups for the IdP to list (Entra ID sent a groups.link instead, above 150 groups), and provisioning has not said whether they are in the admin group.",
		Fix: "Set up SCIM provisioning with the admin group assigned, or limit the group claim to groups assigned to the application."},
	"not-in-group": {Problem: "The user is not a member of the organization's admin group.",
		Fix: "Add the user to the admin group in the IdP (with SCIM, wait for the next provisioning cycle); check that the group claim sends group IDs if the mapping uses an ID."},
	"too-large-values": {Problem: "A value the IdP sent is over the organization's limits: a name, NameID or user ID longer than max_string_length, more than 1,000 groups, a group name over 1 KiB, or group names over 64 KiB in all.",
		Fix: "Send shorter names, and limit the group claim to the groups assigned to the application (Entra ID: Groups assigned to the application; Okta: a group filter)."},
	"org-full": {Problem: "The sign-in would create a new user, and the organization already has as many users, or uses as much storage, as the gateway allows (max_users, max_stored_bytes).",
		Fix: "Remove the accounts of people who left (deprovision them in the IdP), or ask the gateway's operator to raise the limit."},
	"other": {Problem: "The response could not be accepted.",
		Fix: "See the detail; if it does not help, check the IdP's SAML settings against the SP metadata."},
}

func init() {
	for c, r := range reasons {
		r.Code = c
		reasons[c] = r
	}
}

// ReasonByCode returns the troubleshooting table's entry for code, or the
// catch-all "other" for a code it does not have.
func ReasonByCode(code string) Reason {
	if r, ok := reasons[code]; ok {
		return r
	}
	return reasons["other"]
}

// ReasonFor maps a ParseResponse error to its Reason; shape (may be nil)
// tells a SHA-1 signature from another signature failure.
func ReasonFor(err error, shape *Shape) Reason {
	code := "other"
	sha1 := shape != nil && usesSHA1(shape)
	switch {
	case errors.Is(err, KindTooLarge):
		code = "too-large"
	case errors.Is(err, KindNoDestination), errors.Is(err, saml.ErrDestinationMismatch):
		code = "destination"
	case errors.Is(err, KindIdPStatus):
		code = "idp-status"
	case errors.Is(err, KindSessionEnded):
		code = "session-ended"
	case errors.Is(err, KindNoNameID):
		code = "no-nameid"
	case errors.Is(err, KindNoEmail):
		code = "no-email"
	case errors.Is(err, KindBadEmail):
		code = "bad-email"
	case errors.Is(err, KindReplayed):
		code = "replayed"
	case errors.Is(err, saml.ErrIssuerMismatch):
		code = "issuer"
	case errors.Is(err, saml.ErrUntrustedCertificate), errors.Is(err, saml.ErrCertificateNotValidNow), errors.Is(err, saml.ErrInvalidCertificate):
		code = "certificate"
	case errors.Is(err, saml.ErrDecryptionFailed), errors.Is(err, saml.ErrInvalidSignature) && strings.Contains(err.Error(), "EncryptedAssertion"):
		code = "decryption"
	case errors.Is(err, saml.ErrInvalidSignature) && sha1:
		code = "sha1"
	case errors.Is(err, saml.ErrInvalidSignature):
		code = "signature"
	case errors.Is(err, saml.ErrAudienceMismatch):
		code = "audience"
	case errors.Is(err, saml.ErrRequestIDMismatch) && shape != nil && shape.Unsolicited:
		code = "unsolicited"
	case errors.Is(err, saml.ErrRequestIDMismatch):
		code = "request-mismatch"
	case errors.Is(err, saml.ErrNotYetValid):
		code = "not-yet-valid"
	case errors.Is(err, saml.ErrExpired):
		code = "expired"
	case errors.Is(err, saml.ErrMissingElement):
		code = "missing-element"
	case errors.Is(err, saml.ErrUnsupported), errors.Is(err, saml.ErrAuthnContextMismatch):
		code = "unsupported"
	case errors.Is(err, saml.ErrMalformedMessage):
		code = "malformed"
	case strings.Contains(err.Error(), "signature element not present"), shape != nil && len(shape.Signed) == 0 && !shape.Encrypted:
		// crewjam's error for no signature at all has no class.
		code = "signature"
	}
	return reasons[code]
}

// Caps on what Inspect records: it describes strangers' input, so each
// string and list is bounded whatever arrived.
const (
	maxShapeString = 256
	maxShapeNames  = 40
)

// Shape is what a response looked like, for the IT admin who has to fix
// the IdP (see store.SignInShape).
type Shape = store.SignInShape

// Inspect describes a base64 SAMLResponse without validating it. It
// applies ParseResponse's limits first (size, no DOCTYPE, depth) and
// returns nil for anything it cannot read.
func Inspect(encoded string, now time.Time) *Shape {
	if len(encoded) > MaxResponseSize {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(stripSpace(encoded))
	if err != nil || strings.Contains(strings.ToLower(string(raw)), "<!doctype") || CheckXMLDepth(raw, MaxXMLDepth) != nil {
		return nil
	}
	doc := etree.NewDocument()
	if doc.ReadFromBytes(raw) != nil || doc.Root() == nil {
		return nil
	}
	root := doc.Root()
	s := &Shape{Signed: []string{}}
	s.Destination = clip(root.SelectAttrValue("Destination", ""))
	s.Unsolicited = root.SelectAttrValue("InResponseTo", "") == ""
	if t, err := time.Parse(time.RFC3339, root.SelectAttrValue("IssueInstant", "")); err == nil {
		d := int64(t.Sub(now).Round(time.Second) / time.Second)
		s.ClockDifference = &d
	}
	if iss := childEl(root, assertionNS, "Issuer"); iss != nil {
		s.Issuer = clip(strings.TrimSpace(iss.Text()))
	}
	if st := childEl(root, protocolNS, "Status"); st != nil {
		if c := childEl(st, protocolNS, "StatusCode"); c != nil {
			code := c.SelectAttrValue("Value", "")
			if sub := childEl(c, protocolNS, "StatusCode"); sub != nil {
				code += " / " + sub.SelectAttrValue("Value", "")
			}
			s.StatusCode = clip(code)
		}
	}
	sigOf(s, root, "response")
	if childEl(root, assertionNS, "EncryptedAssertion") != nil {
		s.Encrypted = true
	}
	a := childEl(root, assertionNS, "Assertion")
	if a == nil {
		return s
	}
	sigOf(s, a, "assertion")
	if s.Issuer == "" {
		if iss := childEl(a, assertionNS, "Issuer"); iss != nil {
			s.Issuer = clip(strings.TrimSpace(iss.Text()))
		}
	}
	if sub := childEl(a, assertionNS, "Subject"); sub != nil {
		if n := childEl(sub, assertionNS, "NameID"); n != nil {
			s.NameIDFormat = clip(n.SelectAttrValue("Format", ""))
		}
	}
	for _, as := range a.ChildElements() {
		if as.Tag != "AttributeStatement" || as.NamespaceURI() != assertionNS {
			continue
		}
		for _, at := range as.ChildElements() {
			if at.Tag != "Attribute" || at.NamespaceURI() != assertionNS {
				continue
			}
			name := at.SelectAttrValue("Name", "")
			if len(s.AttributeNames) < maxShapeNames && !slices.Contains(s.AttributeNames, clip(name)) {
				s.AttributeNames = append(s.AttributeNames, clip(name))
			}
			if isGroupName(name) || isGroupName(at.SelectAttrValue("FriendlyName", "")) {
				for _, v := range at.ChildElements() {
					if v.Tag == "AttributeValue" {
						s.GroupValues++
					}
				}
			}
		}
	}
	return s
}

// sigOf notes el's own ds:Signature, if it has one.
func sigOf(s *Shape, el *etree.Element, part string) {
	const dsig = "http://www.w3.org/2000/09/xmldsig#"
	sig := childEl(el, dsig, "Signature")
	if sig == nil {
		return
	}
	s.Signed = append(s.Signed, part)
	si := childEl(sig, dsig, "SignedInfo")
	if si == nil {
		return
	}
	if m := childEl(si, dsig, "SignatureMethod"); m != nil {
		s.SignatureAlgorithms = addOnce(s.SignatureAlgorithms, clip(m.SelectAttrValue("Algorithm", "")))
	}
	for _, ref := range si.ChildElements() {
		if ref.Tag == "Reference" {
			if m := childEl(ref, dsig, "DigestMethod"); m != nil {
				s.DigestAlgorithms = addOnce(s.DigestAlgorithms, clip(m.SelectAttrValue("Algorithm", "")))
			}
		}
	}
}

func usesSHA1(s *Shape) bool {
	for _, a := range slices.Concat(s.SignatureAlgorithms, s.DigestAlgorithms) {
		if strings.HasSuffix(a, "sha1") {
			return true
		}
	}
	return false
}

func isGroupName(n string) bool {
	for _, g := range groupNames {
		if n != "" && identity.EqualFold(n, g) {
			return true
		}
	}
	return false
}

func childEl(el *etree.Element, ns, tag string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == ns {
			return c
		}
	}
	return nil
}

func addOnce(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) || len(list) >= 4 {
		return list
	}
	return append(list, v)
}

// clip caps a recorded string at maxShapeString bytes on a rune boundary
// and drops control characters, which have no business in a log view.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	if len(s) <= maxShapeString {
		return s
	}
	cut := maxShapeString
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Decrypted fills in what an encrypted assertion hid from Inspect, once
// ParseResponse has decrypted and validated it.
func Decrypted(s *Shape, id *Identity) {
	if s == nil || !s.Encrypted || id == nil {
		return
	}
	s.NameIDFormat = clip(id.NameIDFormat)
	s.AttributeNames = nil
	for _, n := range id.AttributeNames {
		if len(s.AttributeNames) < maxShapeNames {
			s.AttributeNames = append(s.AttributeNames, clip(n))
		}
	}
	s.GroupValues = len(id.Groups)
	if id.AssertionSigned && !slices.Contains(s.Signed, "assertion") {
		s.Signed = append(s.Signed, "assertion")
	}
}
