package demoidp

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
)

// Signing says which elements of a response RespondWith signs.
type Signing int

const (
	// SignResponseAndAssertion signs the assertion and the response, as
	// the browser flow (samlidp's ServeSSO) does. It is the default.
	SignResponseAndAssertion Signing = iota
	// SignAssertionOnly signs the assertion; the Response is unsigned.
	SignAssertionOnly
	// SignResponseOnly signs the Response; the assertion is unsigned.
	SignResponseOnly
	// SignNothing produces an entirely unsigned response, which a service
	// provider must refuse.
	SignNothing
)

// RespondOptions shape a response made by RespondWith or UnsolicitedWith.
// The zero value makes the response the browser flow would.
type RespondOptions struct {
	// Mutate, if set, changes the assertion before it is signed: to make it
	// expired, for another audience or recipient, from another issuer ...
	// SetAttribute helps with attributes.
	Mutate func(*saml.Assertion)
	// MutateResponse, if set, changes the Response before it is signed:
	// Destination, Issuer, InResponseTo, Status. Its Assertion,
	// EncryptedAssertion and Signature fields are ignored.
	MutateResponse func(*saml.Response)
	Signing        Signing
	// SignatureMethod overrides the signature algorithm (and the matching
	// digest), e.g. dsig.RSASHA1SignatureMethod to check that SHA-1 is
	// refused. Default: RSA-SHA256, or ECDSA-SHA256 for an ECDSA key.
	SignatureMethod string
	// NoEncryption sends the assertion in the clear even when the service
	// provider's metadata has an encryption key (then, by default, it is
	// encrypted to that key, as the browser flow does).
	NoEncryption bool
	// BlockCipher, if set, is the algorithm URI of the block cipher to
	// encrypt with (e.g. AES-128-CBC, as Entra ID does), instead of the
	// strongest the service provider's metadata lists.
	BlockCipher string
	// RelayState, if set, replaces the relay state: the request's for
	// Respond, none for Unsolicited.
	RelayState *string
	// Tamper, if set, is called with the final Response element after
	// signing and encryption, e.g. for signature wrapping attacks.
	// Changing signed content there breaks the signature.
	Tamper func(response *etree.Element)
}

// Respond answers an AuthnRequest (the full redirect URL the SP sent the
// browser to) for user email, after letting mutate change the assertion
// (nil = none) — to produce expired, wrong-audience, wrong-recipient,
// wrong-issuer etc. responses that are still validly signed. Returns the
// ACS URL and the form fields (SAMLResponse, RelayState) a browser would
// POST.
func (i *IdP) Respond(authnRequestURL, email string, mutate func(*saml.Assertion)) (acsURL string, form url.Values, err error) {
	return i.RespondWith(authnRequestURL, email, RespondOptions{Mutate: mutate})
}

// Unsolicited builds an IdP-initiated response (no InResponseTo) for the SP
// registered under spName, sent to its default ACS.
func (i *IdP) Unsolicited(spName, email string, mutate func(*saml.Assertion)) (acsURL string, form url.Values, err error) {
	return i.UnsolicitedWith(spName, email, RespondOptions{Mutate: mutate})
}

// RespondWith is Respond with all the options. The AuthnRequest is
// validated as the SSO endpoint does (known SP, Destination, age, ACS URL).
func (i *IdP) RespondWith(authnRequestURL, email string, opts RespondOptions) (acsURL string, form url.Values, err error) {
	u, err := url.Parse(authnRequestURL)
	if err != nil {
		return "", nil, fmt.Errorf("demoidp: AuthnRequest URL: %w", err)
	}
	sso := i.server.IDP.SSOURL
	if u.Scheme != sso.Scheme || u.Host != sso.Host || u.Path != sso.Path {
		return "", nil, fmt.Errorf("demoidp: AuthnRequest sent to %s://%s%s, not to the SSO URL %s", u.Scheme, u.Host, u.Path, sso.String())
	}
	r, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return "", nil, fmt.Errorf("demoidp: AuthnRequest URL: %w", err)
	}
	req, err := saml.NewIdpAuthnRequest(&i.server.IDP, r)
	if err != nil {
		return "", nil, fmt.Errorf("demoidp: reading AuthnRequest: %w", err)
	}
	if err := req.Validate(); err != nil {
		return "", nil, fmt.Errorf("demoidp: invalid AuthnRequest: %w", err)
	}
	return i.respond(req, email, opts)
}

// UnsolicitedWith is Unsolicited with all the options.
func (i *IdP) UnsolicitedWith(spName, email string, opts RespondOptions) (acsURL string, form url.Values, err error) {
	entityID, err := i.serviceEntityID(spName)
	if err != nil {
		return "", nil, err
	}
	r, err := http.NewRequest(http.MethodGet, i.SSOURL(), nil)
	if err != nil {
		return "", nil, fmt.Errorf("demoidp: %w", err)
	}
	req, err := i.server.IDP.NewIdpInitiatedRequest(r, entityID, "")
	if err != nil {
		return "", nil, fmt.Errorf("demoidp: IdP-initiated request for %q: %w", spName, err)
	}
	return i.respond(req, email, opts)
}

// respond makes, signs and encodes the response to req for email.
func (i *IdP) respond(req *saml.IdpAuthnRequest, email string, opts RespondOptions) (string, url.Values, error) {
	if req.ACSEndpoint == nil || req.ACSEndpoint.Binding != saml.HTTPPostBinding {
		return "", nil, errors.New("demoidp: the service provider has no HTTP-POST assertion consumer service")
	}
	session, err := i.sessionFor(email)
	if err != nil {
		return "", nil, err
	}
	if err := i.server.IDP.AssertionMaker.MakeAssertion(req, session); err != nil {
		return "", nil, fmt.Errorf("demoidp: making assertion: %w", err)
	}
	if opts.Mutate != nil {
		opts.Mutate(req.Assertion)
	}
	signer, err := i.signingContext(opts.SignatureMethod)
	if err != nil {
		return "", nil, err
	}

	assertionEl, err := req.Assertion.CanonicalElement()
	if err != nil {
		return "", nil, fmt.Errorf("demoidp: encoding assertion: %w", err)
	}
	if opts.Signing == SignResponseAndAssertion || opts.Signing == SignAssertionOnly {
		signed, err := signer.SignEnveloped(assertionEl)
		if err != nil {
			return "", nil, fmt.Errorf("demoidp: signing assertion: %w", err)
		}
		// Re-encode with the signature where the schema wants it (after
		// Issuer), as crewjam does; the enveloped transform ignores where.
		children := signed.ChildElements()
		req.Assertion.Signature = children[len(children)-1]
		if assertionEl, err = req.Assertion.CanonicalElement(); err != nil {
			return "", nil, fmt.Errorf("demoidp: encoding assertion: %w", err)
		}
	}
	if !opts.NoEncryption {
		if assertionEl, err = encryptAssertion(req.SPSSODescriptor, assertionEl, opts.BlockCipher); err != nil {
			return "", nil, err
		}
	}

	response := &saml.Response{
		Destination:  req.ACSEndpoint.Location,
		ID:           newID(),
		InResponseTo: req.Request.ID,
		IssueInstant: req.Now,
		Version:      "2.0",
		Issuer: &saml.Issuer{
			Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity",
			Value:  i.EntityID(),
		},
		Status: saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
	}
	if opts.MutateResponse != nil {
		opts.MutateResponse(response)
	}
	response.Assertion, response.EncryptedAssertion, response.Signature = nil, nil, nil

	responseEl := response.Element()
	responseEl.AddChild(assertionEl)
	if opts.Signing == SignResponseAndAssertion || opts.Signing == SignResponseOnly {
		signed, err := signer.SignEnveloped(responseEl)
		if err != nil {
			return "", nil, fmt.Errorf("demoidp: signing response: %w", err)
		}
		children := signed.ChildElements()
		response.Signature = children[len(children)-1]
		responseEl = response.Element()
		responseEl.AddChild(assertionEl)
	}
	if opts.Tamper != nil {
		opts.Tamper(responseEl)
	}

	doc := etree.NewDocument()
	doc.SetRoot(responseEl)
	buf, err := doc.WriteToBytes()
	if err != nil {
		return "", nil, fmt.Errorf("demoidp: encoding response: %w", err)
	}
	relayState := req.RelayState
	if opts.RelayState != nil {
		relayState = *opts.RelayState
	}
	form := url.Values{
		"SAMLResponse": {base64.StdEncoding.EncodeToString(buf)},
		"RelayState":   {relayState},
	}
	return req.ACSEndpoint.Location, form, nil
}

// sessionFor builds the session samlidp would create when email logs in,
// from samlidp's own user record.
func (i *IdP) sessionFor(email string) (*saml.Session, error) {
	name := normalizeEmail(email)
	if _, ok := i.users[name]; !ok {
		return nil, fmt.Errorf("demoidp: no user %q", email)
	}
	var user samlidp.User
	if err := i.server.Store.Get("/users/"+name, &user); err != nil {
		return nil, fmt.Errorf("demoidp: reading user %q: %w", name, err)
	}
	now := time.Now().UTC()
	return &saml.Session{
		ID:             base64.StdEncoding.EncodeToString(randomBytes(32)),
		CreateTime:     now,
		ExpireTime:     now.Add(time.Hour),
		Index:          hex.EncodeToString(randomBytes(32)),
		NameID:         user.Email,
		NameIDFormat:   string(saml.EmailAddressNameIDFormat),
		UserName:       user.Name,
		Groups:         user.Groups,
		UserEmail:      user.Email,
		UserCommonName: user.CommonName,
		UserSurname:    user.Surname,
		UserGivenName:  user.GivenName,
	}, nil
}

// signingContext returns a signing context configured as crewjam's
// IdentityProvider configures its own, with method if it is set.
func (i *IdP) signingContext(method string) (*dsig.SigningContext, error) {
	ctx, err := dsig.NewSigningContext(i.key, [][]byte{i.cert.Raw})
	if err != nil {
		return nil, fmt.Errorf("demoidp: signing context: %w", err)
	}
	if method == "" {
		method = dsig.RSASHA256SignatureMethod
		if _, ok := i.key.Public().(*ecdsa.PublicKey); ok {
			method = dsig.ECDSASHA256SignatureMethod
		}
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(method); err != nil {
		return nil, fmt.Errorf("demoidp: signature method: %w", err)
	}
	return ctx, nil
}

// encryptAssertion wraps assertionEl in an EncryptedAssertion for the
// service provider's encryption key, choosing algorithms as crewjam's
// IdentityProvider does by default unless cipher names one; without such
// a key it returns assertionEl unchanged.
func encryptAssertion(sp *saml.SPSSODescriptor, assertionEl *etree.Element, cipher string) (*etree.Element, error) {
	if sp == nil {
		return assertionEl, nil
	}
	cert, methods, err := spEncryptionCertificate(sp.KeyDescriptors)
	if err != nil || cert == nil {
		return assertionEl, err
	}
	doc := etree.NewDocument()
	doc.SetRoot(assertionEl.Copy())
	plaintext, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("demoidp: encoding assertion: %w", err)
	}
	enc := xmlenc.OAEP()
	enc.DigestMethod = &xmlenc.SHA1
	enc.BlockCipher = xmlenc.AES128CBC
	listed := make(map[string]bool, len(methods))
	for _, m := range methods {
		listed[m.Algorithm] = true
	}
	ciphers := []xmlenc.BlockCipher{xmlenc.AES256GCM, xmlenc.AES128GCM, xmlenc.AES192GCM, xmlenc.AES256CBC, xmlenc.AES128CBC, xmlenc.AES192CBC}
	if cipher != "" {
		listed = map[string]bool{cipher: true}
	}
	found := false
	for _, c := range ciphers {
		if listed[c.Algorithm()] {
			enc.BlockCipher, found = c, true
			break
		}
	}
	if cipher != "" && !found {
		return nil, fmt.Errorf("demoidp: unknown block cipher %q", cipher)
	}
	data, err := enc.Encrypt(cert, plaintext, nil)
	if err != nil {
		return nil, fmt.Errorf("demoidp: encrypting assertion: %w", err)
	}
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	encrypted := etree.NewElement("saml:EncryptedAssertion")
	encrypted.AddChild(data)
	return encrypted, nil
}

func newID() string { return fmt.Sprintf("id-%x", randomBytes(20)) }

// randomBytes returns n bytes from crypto/rand, which never fails (Go 1.24+).
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// spEncryptionCertificate returns the first certificate of a key descriptor
// for encryption (or for any use) and its encryption methods, or nil if
// there is none — the lookup crewjam's IdentityProvider does.
func spEncryptionCertificate(keys []saml.KeyDescriptor) (*x509.Certificate, []saml.EncryptionMethod, error) {
	for _, use := range []string{"encryption", ""} {
		for _, kd := range keys {
			if kd.Use != use {
				continue
			}
			for _, c := range kd.KeyInfo.X509Data.X509Certificates {
				data := strings.Join(strings.Fields(c.Data), "")
				if data == "" {
					continue
				}
				der, err := base64.StdEncoding.DecodeString(data)
				if err != nil {
					return nil, nil, fmt.Errorf("demoidp: service provider encryption certificate: %w", err)
				}
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					return nil, nil, fmt.Errorf("demoidp: service provider encryption certificate: %w", err)
				}
				return cert, kd.EncryptionMethods, nil
			}
		}
	}
	return nil, nil, nil
}
