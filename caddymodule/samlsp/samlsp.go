// Package samlsp is the SAML 2.0 service provider of one organization: it
// builds AuthnRequests for the org's IdP and validates the responses that
// come back, on top of crewjam/saml with a stricter policy (SPEC §3.3):
// no SHA-1, no DOCTYPE, Issuer and Destination required, exactly one
// assertion, a 90-second clock skew on every time in the response, a
// persistent replay cache, and the org's settings taken from the store,
// never from the message. Validation writes nothing: the caller records
// the assertion as used (store.ConsumeSignIn) only once it has decided to
// admit the sign-in, so a refusal leaves no trace but its audit event and
// its entry in the org's sign-in attempts.
package samlsp

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"

	"github.com/ssogate/ssogate/store"
)

// MaxClockSkew is how far the IdP's clock may be from ours. It applies to
// every time bound of a response, in both directions: a time that must be
// past may be this much in the future, and one that must be future this
// much in the past.
const MaxClockSkew = 90 * time.Second

// MaxIssueDelay is how old a response and its assertion may be, by their
// IssueInstant, when they arrive: the IdP's clock skew and the browser's
// round trip together. It is also how long an assertion ID must be
// remembered to refuse its replay.
const MaxIssueDelay = 90 * time.Second

// MinSessionTime is the least session time, after the clock skew
// allowance, that an IdP's SessionNotOnOrAfter must leave: a session that
// would end before the browser reaches the application is refused as
// expired rather than started.
const MinSessionTime = time.Minute

// MaxResponseSize caps the base64 SAMLResponse we are willing to decode.
// Real responses are a few KiB; tens of groups stay well below this.
const MaxResponseSize = 256 << 10

// ErrRefused wraps every reason a response is not accepted. The reason is
// for logs and the org's sign-in attempts (ReasonFor classifies it); users
// get a generic message with a reference code.
var ErrRefused = errors.New("SAML response refused")

// URLs are the SP endpoints of one organization.
type URLs struct {
	EntityID    string
	ACSURL      string
	MetadataURL string
}

// Config describes one org's service provider.
type Config struct {
	Org  *store.Org
	URLs URLs
	// Key and Certificate are the gateway's SP key pair, advertised in
	// metadata (and used to decrypt assertions an IdP chooses to encrypt).
	Key         crypto.Signer
	Certificate *x509.Certificate
	// Replay holds the assertion IDs of admitted sign-ins; it must be
	// persistent and shared by every replica. ParseResponse only reads it.
	Replay *ReplayCache
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Provider is the SP of one organization, built per request from the
// org's current settings so that a settings change applies at once.
type Provider struct {
	sp     saml.ServiceProvider
	now    func() time.Time
	replay *ReplayCache
}

// New builds the provider. It fails when the org's IdP settings are
// incomplete or a certificate does not parse.
func New(cfg Config) (*Provider, error) {
	if cfg.Org == nil {
		return nil, errors.New("samlsp: no organization")
	}
	idp := cfg.Org.IdP
	if idp.EntityID == "" || idp.SSOURL == "" || len(idp.Certificates) == 0 {
		return nil, fmt.Errorf("samlsp: organization %q has incomplete IdP settings", cfg.Org.ID)
	}
	acs, err := url.Parse(cfg.URLs.ACSURL)
	if err != nil {
		return nil, fmt.Errorf("samlsp: ACS URL: %w", err)
	}
	md, err := url.Parse(cfg.URLs.MetadataURL)
	if err != nil {
		return nil, fmt.Errorf("samlsp: metadata URL: %w", err)
	}
	idpMeta, err := idpMetadata(idp)
	if err != nil {
		return nil, fmt.Errorf("samlsp: organization %q: %w", cfg.Org.ID, err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Provider{now: cfg.Now, replay: cfg.Replay}
	// No ReplayCache for crewjam: it would record the assertion while
	// validating it, before our own checks and the org's decision.
	// ParseResponse reads the cache; the caller records.
	p.sp = saml.ServiceProvider{
		EntityID:                         cfg.URLs.EntityID,
		Key:                              cfg.Key,
		Certificate:                      cfg.Certificate,
		AcsURL:                           *acs,
		MetadataURL:                      *md,
		IDPMetadata:                      idpMeta,
		AuthnNameIDFormat:                saml.UnspecifiedNameIDFormat,
		AllowIDPInitiated:                cfg.Org.AllowIdPInitiated,
		RejectSHA1Signatures:             true,
		RequireSignedResponseForCBC:      true,
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		LimitRelayStateLength:            true,
	}
	return p, nil
}

// idpMetadata turns the org's stored IdP settings into the metadata
// crewjam validates against: the entity ID, the redirect SSO endpoint, and
// every signing certificate (several during key rollover).
func idpMetadata(s store.IdPSettings) (*saml.EntityDescriptor, error) {
	var keys []saml.KeyDescriptor
	for i, p := range s.Certificates {
		block, _ := pem.Decode([]byte(p))
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate %d is not a PEM certificate", i+1)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		keys = append(keys, saml.KeyDescriptor{
			Use: "signing",
			KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{X509Certificates: []saml.X509Certificate{
				{Data: base64.StdEncoding.EncodeToString(block.Bytes)},
			}}},
		})
	}
	return &saml.EntityDescriptor{
		EntityID: s.EntityID,
		IDPSSODescriptors: []saml.IDPSSODescriptor{{
			SSODescriptor: saml.SSODescriptor{RoleDescriptor: saml.RoleDescriptor{
				ProtocolSupportEnumeration: "urn:oasis:names:tc:SAML:2.0:protocol",
				KeyDescriptors:             keys,
			}},
			SingleSignOnServices: []saml.Endpoint{{Binding: saml.HTTPRedirectBinding, Location: s.SSOURL}},
		}},
	}, nil
}

// AuthnRequest makes an HTTP-Redirect AuthnRequest. It returns the
// request's ID, which the caller must remember for this browser, and the
// URL to send the browser to.
func (p *Provider) AuthnRequest(relayState string) (id string, redirect *url.URL, err error) {
	return p.authnRequest(relayState, false)
}

// ReauthnRequest is AuthnRequest with ForceAuthn: the IdP must
// authenticate the user anew rather than answer from its own session, so
// that the sign-in proves the person is there (step-up before a sensitive
// change), and its AuthnInstant is recent.
func (p *Provider) ReauthnRequest(relayState string) (id string, redirect *url.URL, err error) {
	return p.authnRequest(relayState, true)
}

func (p *Provider) authnRequest(relayState string, force bool) (string, *url.URL, error) {
	req, err := p.sp.MakeAuthenticationRequest(p.sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return "", nil, fmt.Errorf("samlsp: making AuthnRequest: %w", err)
	}
	if force {
		req.ForceAuthn = &force
	}
	u, err := req.Redirect(relayState, &p.sp)
	if err != nil {
		return "", nil, fmt.Errorf("samlsp: encoding AuthnRequest: %w", err)
	}
	return req.ID, u, nil
}

// Metadata is the SP metadata document of one organization, which its IT
// admin imports into the IdP. It needs no IdP settings, since admins
// download it before they have any.
func Metadata(urls URLs, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	acs, err := url.Parse(urls.ACSURL)
	if err != nil {
		return nil, fmt.Errorf("samlsp: ACS URL: %w", err)
	}
	md, err := url.Parse(urls.MetadataURL)
	if err != nil {
		return nil, fmt.Errorf("samlsp: metadata URL: %w", err)
	}
	sp := saml.ServiceProvider{
		EntityID:                         urls.EntityID,
		Key:                              key,
		Certificate:                      cert,
		AcsURL:                           *acs,
		MetadataURL:                      *md,
		AuthnNameIDFormat:                saml.UnspecifiedNameIDFormat,
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		// An IT admin imports this file once. A validUntil two days out
		// made pysaml2 refuse it and SimpleSAMLphp stop signing users in
		// two days after the import; cacheDuration (a day) is the
		// refresh hint the metadata schema asks for instead.
		MetadataOmitValidUntil: true,
	}
	advertiseSLO(&sp, urls) // slo.go
	ed := sp.Metadata()
	for i := range ed.SPSSODescriptors {
		for j := range ed.SPSSODescriptors[i].KeyDescriptors {
			if kd := &ed.SPSSODescriptors[i].KeyDescriptors[j]; kd.Use == "encryption" {
				kd.EncryptionMethods = AdvertisedEncryption()
			}
		}
	}
	out, err := xmlMarshal(ed)
	if err != nil {
		return nil, fmt.Errorf("samlsp: metadata: %w", err)
	}
	return out, nil
}

// AdvertisedEncryption is what the SP metadata offers an IdP that
// encrypts assertions: AES-GCM, which authenticates the ciphertext, with
// RSA-OAEP key transport. ParseResponse accepts exactly these whatever
// is signed. It also decrypts AES-CBC, but only inside a Response whose
// own signature covers the EncryptedAssertion: decrypting unauthenticated
// CBC would make the gateway a padding oracle for anyone holding a
// captured assertion (crewjam's RequireSignedResponseForCBC). Metadata
// cannot say "CBC if the Response is signed", so CBC is not advertised;
// IdPs set up by hand (Entra ID, Okta) are covered in the README.
// RSA PKCS#1 v1.5 key transport is never accepted (Bleichenbacher).
func AdvertisedEncryption() []saml.EncryptionMethod {
	return []saml.EncryptionMethod{
		{Algorithm: xmlenc.AES256GCM.Algorithm()},
		{Algorithm: xmlenc.AES128GCM.Algorithm()},
		{Algorithm: xmlenc.AES192GCM.Algorithm()},
		{Algorithm: "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"},
		{Algorithm: "http://www.w3.org/2009/xmlenc11#rsa-oaep"},
	}
}

// Identity is what a validated assertion says about the user.
type Identity struct {
	AssertionID string
	// InResponseTo is the AuthnRequest answered; empty when unsolicited.
	InResponseTo string
	NameID       string
	NameIDFormat string
	// ObjectID is the IdP's stable user ID (objectidentifier or another
	// attribute of objectIDNames), or the NameID when it is persistent;
	// empty when the IdP sends neither, and then the user is known only
	// by email.
	ObjectID    string
	Email       string // normalized: trimmed, lower-case
	DisplayName string
	GivenName   string
	FamilyName  string
	Groups      []string
	// AttributeNames are the names of the assertion's attributes, for the
	// sign-in attempts view.
	AttributeNames []string
	// AssertionSigned: the assertion carried its own signature (which an
	// encrypted assertion hides until it is decrypted).
	AssertionSigned bool
	// GroupsOverage is set when Entra ID sent a groups.link claim instead
	// of the groups (more than 150 groups): SCIM membership must decide.
	GroupsOverage bool
	// SessionNotOnOrAfter caps the session, when the IdP set it: its
	// earliest SessionNotOnOrAfter plus the clock skew allowance, which
	// ParseResponse has checked leaves at least MinSessionTime.
	SessionNotOnOrAfter time.Time
	SessionIndex        string
	// AuthnInstant is when the IdP authenticated the user (the earliest
	// of the assertion's AuthnStatements, which ParseResponse requires).
	AuthnInstant time.Time
	// ReplayKey and ReplayUntil are what the caller records, with
	// store.ConsumeSignIn, when it admits the sign-in: the assertion's key
	// in the replay cache (empty without a cache) and how long no copy of
	// it can pass validation.
	ReplayKey   string
	ReplayUntil time.Time
}

// ParseResponse validates a base64 SAMLResponse posted to the ACS against
// the outstanding request IDs of this browser, and returns the identity it
// asserts. Every error wraps ErrRefused.
func (p *Provider) ParseResponse(encoded string, possibleRequestIDs []string) (*Identity, error) {
	if len(encoded) > MaxResponseSize {
		return nil, refuseAs(KindTooLarge, "response of %d bytes exceeds %d", len(encoded), MaxResponseSize)
	}
	raw, err := base64.StdEncoding.DecodeString(stripSpace(encoded))
	if err != nil {
		return nil, refuseAs(saml.ErrMalformedMessage, "response is not base64: %v", err)
	}
	issued, err := precheck(raw)
	if err != nil {
		return nil, refuseErr(err)
	}
	assertion, err := p.sp.ParseXMLResponse(raw, possibleRequestIDs, p.sp.AcsURL)
	if err != nil {
		return nil, refuseErr(describe(err))
	}
	now := p.now()
	if err := checkTimes(issued, assertion, now); err != nil {
		return nil, refuseErr(err)
	}
	id, err := identityOf(assertion)
	if err != nil {
		return nil, refuseErr(err)
	}
	if !id.SessionNotOnOrAfter.IsZero() {
		id.SessionNotOnOrAfter = id.SessionNotOnOrAfter.Add(MaxClockSkew)
	}
	if assertion.ID == "" {
		return nil, refuseAs(saml.ErrMissingElement, "assertion has no ID to check for replay")
	}
	// No copy of the assertion passes checkTimes once its IssueInstant is
	// MaxIssueDelay old; the skew allowance on top is a margin.
	id.ReplayUntil = assertion.IssueInstant.Add(MaxIssueDelay + MaxClockSkew)
	if p.replay != nil {
		id.ReplayKey = p.replay.Key(assertion.ID)
		used, err := p.replay.st.ReplayRecorded(id.ReplayKey)
		if err != nil {
			return nil, fmt.Errorf("samlsp: reading the replay cache: %w", err)
		}
		if used {
			return nil, refuseAs(KindReplayed, "assertion %q has already been used", assertion.ID)
		}
	}
	return id, nil
}

// describe turns crewjam's InvalidResponseError (whose Error() is a
// generic string) into the private reason, for logs.
func describe(err error) error {
	var ire *saml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		return ire.PrivateErr
	}
	return err
}

// refusal is a ParseResponse error: its text is the reason for logs, and
// it matches ErrRefused and the kind of refusal (a Kind* error or one of
// crewjam's classes, such as saml.ErrInvalidSignature) with errors.Is, so
// that Explain can tell an IT admin what to change.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string   { return ErrRefused.Error() + ": " + r.msg }
func (r *refusal) Unwrap() []error { return []error{ErrRefused, r.kind} }

func refuseAs(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// refuseErr refuses with err's text, keeping its kind when it has one.
func refuseErr(err error) error {
	if r := (*refusal)(nil); errors.As(err, &r) {
		return r
	}
	return &refusal{kind: err, msg: err.Error()}
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}

// precheck applies the policy crewjam leaves to us, before any signature
// work: no DOCTYPE at all (entity expansion, external entities), a
// Response root that names its Issuer and Destination even when only the
// assertion is signed, a Status that is Success at every level, and
// exactly one assertion, so that no wrapping trick can make us read a
// different assertion from the one verified. It returns the Response's
// IssueInstant, which checkTimes judges once the signatures are verified.
func precheck(raw []byte) (time.Time, error) {
	if bytes.Contains(bytes.ToLower(raw), []byte("<!doctype")) {
		return time.Time{}, refuseAs(saml.ErrMalformedMessage, "document has a DOCTYPE")
	}
	if err := CheckXMLDepth(raw, MaxXMLDepth); err != nil {
		return time.Time{}, refuseAs(saml.ErrMalformedMessage, "%v", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return time.Time{}, refuseAs(saml.ErrMalformedMessage, "malformed XML: %v", err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "Response" || root.NamespaceURI() != protocolNS {
		return time.Time{}, refuseAs(saml.ErrMalformedMessage, "root element is not a samlp:Response")
	}
	if root.SelectAttrValue("Destination", "") == "" {
		return time.Time{}, refuseAs(KindNoDestination, "response has no Destination")
	}
	issued, err := time.Parse(time.RFC3339, root.SelectAttrValue("IssueInstant", ""))
	if err != nil {
		return time.Time{}, refuseAs(saml.ErrMalformedMessage, "response IssueInstant is not a UTC date and time: %v", err)
	}
	if err := checkStatus(root); err != nil {
		return time.Time{}, err
	}
	// Every Issuer counts, empty or not: encoding/xml keeps the last of
	// several, which need not be the one anybody checked.
	var issuers []*etree.Element
	for _, c := range root.ChildElements() {
		if c.Tag == "Issuer" && c.NamespaceURI() == assertionNS {
			issuers = append(issuers, c)
		}
	}
	if len(issuers) != 1 || strings.TrimSpace(issuers[0].Text()) == "" {
		return time.Time{}, refuseAs(saml.ErrIssuerMismatch, "response must have exactly one Issuer, not empty")
	}
	if n := countAssertions(root); n != 1 {
		return time.Time{}, refuseAs(saml.ErrMalformedMessage, "document holds %d assertions, want exactly one", n)
	}
	return issued, nil
}

const (
	protocolNS  = "urn:oasis:names:tc:SAML:2.0:protocol"
	assertionNS = "urn:oasis:names:tc:SAML:2.0:assertion"
)

// checkStatus requires exactly one Status with exactly one StatusCode per
// level, every one of them Success. crewjam reads only the top level, and
// a Success that carries a second-level code such as AuthnFailed or
// RequestDenied is an IdP saying no in the small print (saml-core §3.2.2.2).
// Several elements at one level are refused because encoding/xml keeps the
// last, which need not be the one anybody checked.
func checkStatus(root *etree.Element) error {
	var status []*etree.Element
	for _, c := range root.ChildElements() {
		if c.Tag == "Status" && c.NamespaceURI() == protocolNS {
			status = append(status, c)
		}
	}
	if len(status) != 1 {
		return refuseAs(KindIdPStatus, "response must have exactly one Status, has %d", len(status))
	}
	level, parent := 1, status[0]
	for {
		var codes []*etree.Element
		for _, c := range parent.ChildElements() {
			if c.Tag == "StatusCode" && c.NamespaceURI() == protocolNS {
				codes = append(codes, c)
			}
		}
		switch {
		case len(codes) == 0 && level > 1:
			return nil
		case len(codes) != 1:
			return refuseAs(KindIdPStatus, "response Status must have exactly one StatusCode at level %d, has %d", level, len(codes))
		}
		if v := codes[0].SelectAttrValue("Value", ""); v != saml.StatusSuccess {
			return refuseAs(KindIdPStatus, "response status is not Success: level %d StatusCode is %q", level, v)
		}
		// A 200-level nesting is not a status, it is an attack on
		// whoever walks it; no IdP nests more than two.
		if level++; level > 4 {
			return refuseAs(KindIdPStatus, "response StatusCode nested too deeply")
		}
		parent = codes[0]
	}
}

// countAssertions counts Assertion and EncryptedAssertion elements
// anywhere in the document, not only where they belong: a second one
// hidden in an Extensions or Object element is how signature wrapping
// attacks smuggle theirs in.
func countAssertions(el *etree.Element) int {
	n := 0
	for _, c := range el.ChildElements() {
		if (c.Tag == "Assertion" || c.Tag == "EncryptedAssertion") && c.NamespaceURI() == assertionNS {
			n++
		}
		n += countAssertions(c)
	}
	return n
}

// checkTimes applies MaxClockSkew and MaxIssueDelay to every time bound
// of the response, on our own clock, whatever crewjam allows: its
// defaults are a 180-second skew, and it reads neither AuthnInstant nor
// SessionNotOnOrAfter. A bound that must be past may be MaxClockSkew in
// the future; one that must be future may be MaxClockSkew past. Every
// SubjectConfirmationData counts, not only the one crewjam found valid.
func checkTimes(responseIssued time.Time, a *saml.Assertion, now time.Time) error {
	future := func(t time.Time) bool { return t.After(now.Add(MaxClockSkew)) }
	ended := func(notOnOrAfter time.Time) bool { return !now.Before(notOnOrAfter.Add(MaxClockSkew)) }
	for _, in := range []struct {
		what string
		t    time.Time
	}{{"response", responseIssued}, {"assertion", a.IssueInstant}} {
		if in.t.IsZero() {
			return refuseAs(saml.ErrMissingElement, "%s has no IssueInstant", in.what)
		}
		if future(in.t) {
			return refuseAs(saml.ErrNotYetValid, "%s IssueInstant %s is more than %s in the future", in.what, stamp(in.t), MaxClockSkew)
		}
		if in.t.Before(now.Add(-MaxIssueDelay)) {
			return refuseAs(saml.ErrExpired, "%s IssueInstant %s is more than %s old", in.what, stamp(in.t), MaxIssueDelay)
		}
	}
	if c := a.Conditions; c != nil {
		if future(c.NotBefore) {
			return refuseAs(saml.ErrNotYetValid, "assertion not yet valid: Conditions NotBefore %s is more than %s in the future", stamp(c.NotBefore), MaxClockSkew)
		}
		if !c.NotOnOrAfter.IsZero() && ended(c.NotOnOrAfter) {
			return refuseAs(saml.ErrExpired, "assertion expired: Conditions NotOnOrAfter %s is more than %s past", stamp(c.NotOnOrAfter), MaxClockSkew)
		}
	}
	if a.Subject != nil {
		for _, sc := range a.Subject.SubjectConfirmations {
			d := sc.SubjectConfirmationData
			if d == nil {
				continue
			}
			if future(d.NotBefore) {
				return refuseAs(saml.ErrNotYetValid, "subject confirmation not yet valid: NotBefore %s is more than %s in the future", stamp(d.NotBefore), MaxClockSkew)
			}
			if !d.NotOnOrAfter.IsZero() && ended(d.NotOnOrAfter) {
				return refuseAs(saml.ErrExpired, "subject confirmation expired: NotOnOrAfter %s is more than %s past", stamp(d.NotOnOrAfter), MaxClockSkew)
			}
		}
	}
	for _, st := range a.AuthnStatements {
		// AuthnInstant is required (saml-core §2.7.2); how long ago the
		// user authenticated at the IdP is the IdP's policy.
		if st.AuthnInstant.IsZero() {
			return refuseAs(saml.ErrMissingElement, "AuthnStatement has no AuthnInstant")
		}
		if future(st.AuthnInstant) {
			return refuseAs(saml.ErrNotYetValid, "AuthnInstant %s is more than %s in the future", stamp(st.AuthnInstant), MaxClockSkew)
		}
		if end := st.SessionNotOnOrAfter; end != nil && !now.Add(MinSessionTime).Before(end.Add(MaxClockSkew)) {
			return refuseAs(KindSessionEnded, "the IdP's session has ended: SessionNotOnOrAfter %s leaves less than %s after the %s allowance", stamp(*end), MinSessionTime, MaxClockSkew)
		}
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
