package samlsp

import (
	"bytes"
	"compress/flate"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/ssogate/ssogate/store"
)

// SAML Single Logout, HTTP-Redirect binding, in both directions: the
// gateway asks the IdP to end its session when a user signs out
// (SP-initiated), and the IdP tells the gateway to end the user's session
// when they sign out elsewhere (IdP-initiated). Every message the gateway
// sends is signed with the SP key; every message it accepts must be signed
// by one of the org's IdP certificates, come from the org's IdP entity, be
// addressed to the org's SLO URL, be fresh, and (a LogoutRequest) be new to
// the replay cache, or (a LogoutResponse) answer a LogoutRequest this
// browser sent: the same checks as for a sign-in response.

// SLO names the two single-logout endpoints of an organization.
type SLO struct {
	SPURL  string // ours: <prefix>/saml/<org>/slo
	IdPURL string // the org's IdP SingleLogoutService (HTTP-Redirect)
}

// SLOURL is the single logout endpoint of the SP whose entity ID is
// entityID (the gateway derives its SP URLs from the entity ID).
func SLOURL(entityID string) string { return entityID + "/slo" }

// advertiseSLO puts the single logout endpoint (HTTP-Redirect) and the
// key that signs logout messages into the SP's metadata, so that an IdP
// importing it can verify our LogoutRequests and knows where to send its
// own.
func advertiseSLO(sp *saml.ServiceProvider, urls URLs) {
	u, err := url.Parse(SLOURL(urls.EntityID))
	if err != nil {
		return
	}
	sp.SloURL = *u
	sp.LogoutBindings = []string{saml.HTTPRedirectBinding}
	switch sp.Key.Public().(type) {
	case *rsa.PublicKey:
		sp.LogoutSignatureMethod = dsig.RSASHA256SignatureMethod
	case *ecdsa.PublicKey:
		sp.LogoutSignatureMethod = dsig.ECDSASHA256SignatureMethod
	}
}

// ErrNoSLO is returned when the org's IdP has no single logout endpoint.
var ErrNoSLO = errors.New("samlsp: the IdP has no single logout endpoint")

// MaxLogoutMessageSize caps an incoming SAMLRequest or SAMLResponse
// (base64), checked before anything decodes it. Logout messages are small.
const MaxLogoutMessageSize = 64 << 10

// MaxLogoutXMLSize caps a logout message once inflated, MaxLogoutElements
// the elements it holds and MaxLogoutAttributes their attributes
// (namespace declarations included). Real ones are about 1 KiB, 10
// elements and 15 attributes (twice that with an enveloped signature).
// Deflate packs a megabyte of repeated elements into a kilobyte of query,
// and crewjam inflates up to 1 MiB and builds a tree of it before it
// looks at the signature, so a stranger's link would cost hundreds of
// megabytes; these caps are checked first, on a copy inflated here.
const (
	MaxLogoutXMLSize    = 64 << 10
	MaxLogoutElements   = 1000
	MaxLogoutAttributes = 1000
)

// sloSP is the provider's SP with the logout endpoints and signing set.
func (p *Provider) sloSP(slo SLO) (*saml.ServiceProvider, error) {
	if slo.IdPURL == "" {
		return nil, ErrNoSLO
	}
	spURL, err := url.Parse(slo.SPURL)
	if err != nil || spURL.Scheme == "" || spURL.Host == "" {
		return nil, fmt.Errorf("samlsp: SLO URL %q is not absolute", slo.SPURL)
	}
	sp := p.sp
	sp.SloURL = *spURL
	switch sp.Key.Public().(type) {
	case *rsa.PublicKey:
		sp.LogoutSignatureMethod = dsig.RSASHA256SignatureMethod
	case *ecdsa.PublicKey:
		sp.LogoutSignatureMethod = dsig.ECDSASHA256SignatureMethod
	default:
		return nil, errors.New("samlsp: SP key is neither RSA nor ECDSA")
	}
	md := *sp.IDPMetadata
	md.IDPSSODescriptors = append([]saml.IDPSSODescriptor(nil), md.IDPSSODescriptors...)
	if len(md.IDPSSODescriptors) != 1 {
		return nil, errors.New("samlsp: IdP metadata must have one IDPSSODescriptor")
	}
	md.IDPSSODescriptors[0].SingleLogoutServices = []saml.Endpoint{{Binding: saml.HTTPRedirectBinding, Location: slo.IdPURL}}
	sp.IDPMetadata = &md
	return &sp, nil
}

// LogoutRequest makes a signed HTTP-Redirect LogoutRequest for nameID. It
// returns the request's ID, which the caller must remember for this
// browser to accept the IdP's answer, and the URL to send the browser to.
func (p *Provider) LogoutRequest(slo SLO, nameID, relayState string) (id string, redirect *url.URL, err error) {
	sp, err := p.sloSP(slo)
	if err != nil {
		return "", nil, err
	}
	req, err := sp.MakeLogoutRequest(slo.IdPURL, nameID)
	if err != nil {
		return "", nil, fmt.Errorf("samlsp: making LogoutRequest: %w", err)
	}
	u, err := sp.RedirectLogoutRequestURL(req, relayState)
	if err != nil {
		return "", nil, fmt.Errorf("samlsp: encoding LogoutRequest: %w", err)
	}
	return req.ID, u, nil
}

// checkLogoutMessage refuses a logout message (the HTTP-Redirect
// binding's param) that is too large, encoded, inflated or as XML,
// before crewjam decodes it: every limit here holds for what crewjam then
// inflates and parses, as it is the same value.
func checkLogoutMessage(r *http.Request, param string) error {
	if len(r.URL.RawQuery) > 2*MaxLogoutMessageSize {
		return fmt.Errorf("%w: query string too large", ErrRefused)
	}
	v := r.URL.Query().Get(param)
	if v == "" {
		return fmt.Errorf("%w: no %s in the query (only the HTTP-Redirect binding is accepted)", ErrRefused, param)
	}
	if len(v) > MaxLogoutMessageSize {
		return fmt.Errorf("%w: %s too large", ErrRefused, param)
	}
	deflated, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return fmt.Errorf("%w: %s is not base64: %v", ErrRefused, param, err)
	}
	fr := flate.NewReader(bytes.NewReader(deflated))
	defer fr.Close()
	raw, err := io.ReadAll(io.LimitReader(fr, MaxLogoutXMLSize+1))
	if err != nil {
		return fmt.Errorf("%w: %s does not inflate: %v", ErrRefused, param, err)
	}
	if len(raw) > MaxLogoutXMLSize {
		return fmt.Errorf("%w: %s inflates to more than %d bytes", ErrRefused, param, MaxLogoutXMLSize)
	}
	if err := checkXMLShape(raw, MaxXMLDepth, MaxLogoutElements, MaxLogoutAttributes); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrRefused, param, err)
	}
	return nil
}

// checkXMLShape refuses a document nesting elements more than maxDepth
// deep, or holding more than maxElements elements or maxAttrs attributes,
// reading tokens only (as CheckXMLDepth, which it extends with the
// counts). Attributes count because the tree builders and the namespace
// handling behind crewjam spend on each, as on an element.
func checkXMLShape(raw []byte, maxDepth, maxElements, maxAttrs int) error {
	dec := xml.NewDecoder(bytes.NewReader(raw))
	depth, elements, attrs := 0, 0, 0
	for {
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("malformed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			elements++
			attrs += len(tok.Attr)
			if depth > maxDepth {
				return fmt.Errorf("XML nests elements more than %d deep", maxDepth)
			}
			if elements > maxElements {
				return fmt.Errorf("XML has more than %d elements", maxElements)
			}
			if attrs > maxAttrs {
				return fmt.Errorf("XML has more than %d attributes", maxAttrs)
			}
		case xml.EndElement:
			depth--
		}
	}
}

// ParseLogoutResponse validates the IdP's answer to one of possibleIDs
// (HTTP-Redirect binding) and requires its status to be Success.
func (p *Provider) ParseLogoutResponse(slo SLO, r *http.Request, possibleIDs []string) error {
	if err := checkLogoutMessage(r, "SAMLResponse"); err != nil {
		return err
	}
	sp, err := p.sloSP(slo)
	if err != nil {
		return err
	}
	resp, err := sp.ParseLogoutResponse(r, possibleIDs)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrRefused, privateErr(err))
	}
	if resp.Status.StatusCode.Value != saml.StatusSuccess {
		return fmt.Errorf("%w: the IdP answered with status %q", ErrRefused, resp.Status.StatusCode.Value)
	}
	return nil
}

// IdPLogout is what a valid LogoutRequest from the IdP asks for: end the
// sessions started by assertions about NameID (exact value) and, if
// SessionIndexes is not empty, only those of these IdP sessions.
type IdPLogout struct {
	NameID         string
	SessionIndexes []string
	RequestID      string // answered by LogoutResponse
}

// ValidateLogoutRequest validates an IdP-initiated LogoutRequest
// (HTTP-Redirect binding, signed) and records it in the replay cache.
func (p *Provider) ValidateLogoutRequest(slo SLO, r *http.Request) (*IdPLogout, error) {
	if err := checkLogoutMessage(r, "SAMLRequest"); err != nil {
		return nil, err
	}
	// The binding's signature is over the query; an unsigned request
	// could come from anyone who can make the browser follow a link.
	if q := r.URL.Query(); q.Get("Signature") == "" || q.Get("SigAlg") == "" {
		return nil, fmt.Errorf("%w: LogoutRequest is not signed", ErrRefused)
	}
	sp, err := p.sloSP(slo)
	if err != nil {
		return nil, err
	}
	req, err := sp.ValidateLogoutRequest(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrRefused, privateErr(err))
	}
	// Trimmed as at sign-in (identity.go), so that the two compare.
	if req.NameID == nil || strings.TrimSpace(req.NameID.Value) == "" {
		return nil, fmt.Errorf("%w: LogoutRequest has no NameID", ErrRefused)
	}
	// Once only, as a response: crewjam checks no replay of its own here
	// (the provider gives it no replay cache; see New). Kept as long as a
	// request's IssueInstant could still pass.
	if p.replay != nil {
		until := req.IssueInstant.Add(MaxIssueDelay + MaxClockSkew)
		switch err := p.replay.st.ConsumeOnce(p.replay.Key("logout:"+req.ID), until); {
		case errors.Is(err, store.ErrReplayed):
			return nil, fmt.Errorf("%w: LogoutRequest %q was seen before", ErrRefused, req.ID)
		case err != nil:
			return nil, fmt.Errorf("samlsp: recording LogoutRequest: %w", err)
		}
	}
	l := &IdPLogout{NameID: strings.TrimSpace(req.NameID.Value), RequestID: req.ID}
	for _, si := range req.AllSessionIndexes() {
		if si.Value != "" { // compared as recorded at sign-in
			l.SessionIndexes = append(l.SessionIndexes, si.Value)
		}
	}
	return l, nil
}

// LogoutResponse makes the signed HTTP-Redirect answer to an IdP's
// LogoutRequest.
func (p *Provider) LogoutResponse(slo SLO, requestID, relayState string) (*url.URL, error) {
	sp, err := p.sloSP(slo)
	if err != nil {
		return nil, err
	}
	u, err := sp.MakeRedirectLogoutResponse(requestID, relayState)
	if err != nil {
		return nil, fmt.Errorf("samlsp: making LogoutResponse: %w", err)
	}
	return u, nil
}

// privateErr is the detailed reason crewjam keeps out of Error().
func privateErr(err error) string {
	var ire *saml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		return ire.PrivateErr.Error()
	}
	return err.Error()
}
