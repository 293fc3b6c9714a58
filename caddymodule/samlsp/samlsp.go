// Package samlsp is the SAML 2.0 service provider of one organization: it
// builds AuthnRequests for the org's IdP and validates the responses that
// come back, on top of crewjam/saml with a stricter policy (SPEC §3.3):
// no SHA-1, no DOCTYPE, Issuer and Destination required, exactly one
// assertion, a 90-second clock skew, a persistent replay cache, and the
// org's settings taken from the store, never from the message.
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

	"github.com/ssogate/ssogate/store"
)

// MaxClockSkew is how far the IdP's clock may be from ours.
const MaxClockSkew = 90 * time.Second

// MaxResponseSize caps the base64 SAMLResponse we are willing to decode.
// Real responses are a few KiB; tens of groups stay well below this.
const MaxResponseSize = 256 << 10

// ErrRefused wraps every reason a response is not accepted. The reason is
// for logs; users get a generic message.
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
	// Replay records accepted assertion IDs; it must be persistent and
	// shared by every replica.
	Replay saml.AssertionReplayCache
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Provider is the SP of one organization, built per request from the
// org's current settings so that a settings change applies at once.
type Provider struct {
	sp  saml.ServiceProvider
	now func() time.Time
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
	p := &Provider{now: cfg.Now}
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
		ReplayCache:                      cfg.Replay,
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		MetadataValidDuration:            48 * time.Hour,
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
		MetadataValidDuration:            48 * time.Hour,
	}
	advertiseSLO(&sp, urls) // slo.go
	out, err := xmlMarshal(sp.Metadata())
	if err != nil {
		return nil, fmt.Errorf("samlsp: metadata: %w", err)
	}
	return out, nil
}

// Identity is what a validated assertion says about the user.
type Identity struct {
	AssertionID string
	// InResponseTo is the AuthnRequest answered; empty when unsolicited.
	InResponseTo string
	NameID       string
	// ObjectID is the IdP's stable user ID (objectidentifier), or the
	// NameID when the IdP sends none.
	ObjectID    string
	Email       string // normalized: trimmed, lower-case
	DisplayName string
	GivenName   string
	FamilyName  string
	Groups      []string
	// GroupsOverage is set when Entra ID sent a groups.link claim instead
	// of the groups (more than 150 groups): SCIM membership must decide.
	GroupsOverage bool
	// SessionNotOnOrAfter caps the session, when the IdP set it.
	SessionNotOnOrAfter time.Time
	SessionIndex        string
	// AuthnInstant is when the IdP authenticated the user (the earliest
	// of the assertion's AuthnStatements); zero when it did not say.
	AuthnInstant time.Time
}

// ParseResponse validates a base64 SAMLResponse posted to the ACS against
// the outstanding request IDs of this browser, and returns the identity it
// asserts. Every error wraps ErrRefused.
func (p *Provider) ParseResponse(encoded string, possibleRequestIDs []string) (*Identity, error) {
	if len(encoded) > MaxResponseSize {
		return nil, refuse("response of %d bytes exceeds %d", len(encoded), MaxResponseSize)
	}
	raw, err := base64.StdEncoding.DecodeString(stripSpace(encoded))
	if err != nil {
		return nil, refuse("response is not base64: %v", err)
	}
	if err := precheck(raw); err != nil {
		return nil, refuse("%v", err)
	}
	assertion, err := p.sp.ParseXMLResponse(raw, possibleRequestIDs, p.sp.AcsURL)
	if err != nil {
		return nil, refuse("%v", describe(err))
	}
	if err := checkTimes(assertion, p.now()); err != nil {
		return nil, refuse("%v", err)
	}
	id, err := identityOf(assertion)
	if err != nil {
		return nil, refuse("%v", err)
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

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
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
// assertion is signed, and exactly one assertion, so that no wrapping
// trick can make us read a different assertion from the one verified.
func precheck(raw []byte) error {
	if bytes.Contains(bytes.ToLower(raw), []byte("<!doctype")) {
		return errors.New("document has a DOCTYPE")
	}
	if err := CheckXMLDepth(raw, MaxXMLDepth); err != nil {
		return err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return fmt.Errorf("malformed XML: %v", err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "Response" || root.NamespaceURI() != "urn:oasis:names:tc:SAML:2.0:protocol" {
		return errors.New("root element is not a samlp:Response")
	}
	if root.SelectAttrValue("Destination", "") == "" {
		return errors.New("response has no Destination")
	}
	// Every Issuer counts, empty or not: encoding/xml keeps the last of
	// several, which need not be the one anybody checked.
	var issuers []*etree.Element
	for _, c := range root.ChildElements() {
		if c.Tag == "Issuer" && c.NamespaceURI() == "urn:oasis:names:tc:SAML:2.0:assertion" {
			issuers = append(issuers, c)
		}
	}
	if len(issuers) != 1 || strings.TrimSpace(issuers[0].Text()) == "" {
		return errors.New("response must have exactly one Issuer, not empty")
	}
	if n := countAssertions(root); n != 1 {
		return fmt.Errorf("document holds %d assertions, want exactly one", n)
	}
	return nil
}

// countAssertions counts Assertion and EncryptedAssertion elements
// anywhere in the document, not only where they belong: a second one
// hidden in an Extensions or Object element is how signature wrapping
// attacks smuggle theirs in.
func countAssertions(el *etree.Element) int {
	n := 0
	for _, c := range el.ChildElements() {
		if (c.Tag == "Assertion" || c.Tag == "EncryptedAssertion") && c.NamespaceURI() == "urn:oasis:names:tc:SAML:2.0:assertion" {
			n++
		}
		n += countAssertions(c)
	}
	return n
}

// checkTimes narrows crewjam's 180-second skew allowance to ours.
func checkTimes(a *saml.Assertion, now time.Time) error {
	if a.IssueInstant.After(now.Add(MaxClockSkew)) {
		return errors.New("assertion issued in the future")
	}
	if c := a.Conditions; c != nil {
		if !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(MaxClockSkew)) {
			return errors.New("assertion not yet valid")
		}
		if !c.NotOnOrAfter.IsZero() && !now.Before(c.NotOnOrAfter.Add(MaxClockSkew)) {
			return errors.New("assertion expired")
		}
	}
	if a.Subject != nil {
		for _, sc := range a.Subject.SubjectConfirmations {
			if d := sc.SubjectConfirmationData; d != nil && !d.NotOnOrAfter.IsZero() && !now.Before(d.NotOnOrAfter.Add(MaxClockSkew)) {
				return errors.New("subject confirmation expired")
			}
		}
	}
	return nil
}
