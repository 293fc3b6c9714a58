package orgs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/store"
)

// Bounds on IdP settings. Real values are far below them; they exist so
// that a pasted file of the wrong kind is refused rather than stored.
const (
	maxEntityIDLen    = 1024
	maxSSOURLLen      = 2048
	maxCertificates   = 10
	maxPEMLen         = 64 << 10
	maxMetadataLen    = 1 << 20
	minRSAKeyBits     = 2048
	samlProtocolToken = "urn:oasis:names:tc:SAML:2.0:protocol"
)

// IdPInput is what an admin gives about the organization's IdP: either the
// three fields, or the IdP's metadata document that holds them.
type IdPInput struct {
	EntityID     string   `json:"entity_id,omitempty"`
	SSOURL       string   `json:"sso_url,omitempty"`
	Certificates []string `json:"certificates,omitempty"` // PEM, one or more CERTIFICATE blocks each
	MetadataXML  string   `json:"metadata_xml,omitempty"`
	// MetadataURL is where the IdP publishes its metadata; SetIdPContext
	// fetches it (https only) and takes the three fields from it.
	MetadataURL string `json:"metadata_url,omitempty"`
	// SLOURL is the IdP's single logout endpoint (HTTP-Redirect binding),
	// optional; with MetadataXML it comes from the metadata.
	SLOURL string `json:"slo_url,omitempty"`
}

// SetIdP validates and saves an organization's IdP settings, replacing the
// previous ones. With MetadataXML, the entity ID, HTTP-Redirect SSO URL and
// signing certificates are taken from the metadata; giving fields as well
// is refused rather than merged, so what is saved is never a surprise.
//
// SetIdP is SetIdPContext with a background context.
func (s *Service) SetIdP(actor, orgID string, in IdPInput) (*OrgView, error) {
	return s.SetIdPContext(context.Background(), actor, orgID, in)
}

// SetIdPContext is SetIdP for input that may name a metadata URL, which it
// fetches (see FetchIdPMetadata) within ctx. MetadataURL excludes every
// other field, as MetadataXML does; the URL is kept with the settings.
func (s *Service) SetIdPContext(ctx context.Context, actor, orgID string, in IdPInput) (*OrgView, error) {
	if _, err := s.getOrg(orgID); err != nil {
		return nil, err
	}
	metadataURL := ""
	if strings.TrimSpace(in.MetadataURL) != "" {
		if in.EntityID != "" || in.SSOURL != "" || len(in.Certificates) > 0 || in.MetadataXML != "" || in.SLOURL != "" {
			return nil, invalid("metadata_url",
				"give either metadata_url, metadata_xml, or entity_id, sso_url and certificates, not several")
		}
		fetched, err := s.FetchIdPMetadata(ctx, in.MetadataURL)
		if err != nil {
			return nil, err
		}
		metadataURL = strings.TrimSpace(in.MetadataURL)
		in = fetched
	}
	settings, source, err := ValidateIdP(in, time.Now())
	if err != nil {
		if e, ok := AsError(err); ok && metadataURL != "" && e.Field != "metadata_url" {
			return nil, invalid("metadata_url", "the metadata at %s: %s", metadataURL, e.Message)
		}
		return nil, err
	}
	if metadataURL != "" {
		settings.MetadataURL = metadataURL
		source = "metadata_url"
	}
	o, err := s.store.UpdateOrg(orgID, func(o *store.Org) error {
		o.IdP = settings
		o.Updated = time.Now().UTC()
		return nil
	})
	if err != nil {
		return nil, orgErr(orgID, err, "saving IdP settings of")
	}
	fingerprints := make([]string, 0, len(settings.Certificates))
	for _, c := range storedCerts(settings.Certificates) {
		fingerprints = append(fingerprints, fingerprint(c))
	}
	s.audit(orgID, actor, "idp.set", OutcomeSuccess, map[string]string{
		"source":       source,
		"entity_id":    settings.EntityID,
		"sso_url":      settings.SSOURL,
		"certificates": strings.Join(fingerprints, ","),
	})
	return s.view(o)
}

// ValidateIdP checks IdP settings as SetIdP does and returns them in stored
// form, with the source they came from ("fields" or "metadata").
func ValidateIdP(in IdPInput, now time.Time) (store.IdPSettings, string, error) {
	if strings.TrimSpace(in.MetadataXML) != "" {
		if in.EntityID != "" || in.SSOURL != "" || len(in.Certificates) > 0 || in.SLOURL != "" {
			return store.IdPSettings{}, "", invalid("metadata_xml",
				"give either metadata_xml or entity_id, sso_url and certificates, not both")
		}
		fromMD, err := idpFromMetadata(in.MetadataXML)
		if err != nil {
			return store.IdPSettings{}, "", err
		}
		settings, err := validateIdPFields(fromMD, now)
		if err != nil {
			// Point at the document the admin gave, naming the part of it
			// that is wrong.
			if e, ok := AsError(err); ok {
				return store.IdPSettings{}, "", invalid("metadata_xml", "metadata %s: %s", e.Field, e.Message)
			}
			return store.IdPSettings{}, "", err
		}
		return settings, "metadata", nil
	}
	settings, err := validateIdPFields(in, now)
	return settings, "fields", err
}

func validateIdPFields(in IdPInput, now time.Time) (store.IdPSettings, error) {
	entityID, err := cleanText("entity_id", in.EntityID, maxEntityIDLen)
	if err != nil {
		return store.IdPSettings{}, err
	}
	if strings.IndexFunc(entityID, unicode.IsSpace) >= 0 {
		return store.IdPSettings{}, invalid("entity_id", "must not contain spaces")
	}
	ssoURL, err := validateSSOURL("sso_url", in.SSOURL)
	if err != nil {
		return store.IdPSettings{}, err
	}
	certs, err := parseCertificates("certificates", in.Certificates, now)
	if err != nil {
		return store.IdPSettings{}, err
	}
	sloURL := ""
	if strings.TrimSpace(in.SLOURL) != "" {
		if sloURL, err = validateSSOURL("slo_url", in.SLOURL); err != nil {
			return store.IdPSettings{}, err
		}
	}
	return store.IdPSettings{EntityID: entityID, SSOURL: ssoURL, Certificates: certs, SLOURL: sloURL}, nil
}

// validateSSOURL requires an absolute https URL; plain http is allowed only
// to a loopback host, where nothing crosses a network (local test IdPs).
func validateSSOURL(field, raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", invalid(field, "is required")
	}
	if len(raw) > maxSSOURLLen {
		return "", invalid(field, "is too long (at most %d characters)", maxSSOURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "", invalid(field, "%q is not an absolute URL (https://...)", raw)
	}
	if u.User != nil {
		return "", invalid(field, "must not contain credentials")
	}
	if u.Fragment != "" {
		return "", invalid(field, "must not contain a fragment (#...)")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return "", invalid(field, "must use https (plain http is allowed only for localhost and loopback addresses)")
		}
	default:
		return "", invalid(field, "must use https")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u.String(), nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseCertificates checks IdP signing certificates and returns them as
// canonical PEM, one certificate each, without duplicates. Each input may
// hold several CERTIFICATE blocks; any other block type (a private key
// pasted by mistake, for one) is refused without echoing it.
func parseCertificates(field string, pems []string, now time.Time) ([]string, error) {
	if len(pems) == 0 {
		return nil, invalid(field, "at least one signing certificate (PEM) is required")
	}
	var out []string
	seen := map[[32]byte]bool{}
	for i, p := range pems {
		n := i + 1
		if len(p) > maxPEMLen {
			return nil, invalid(field, "certificate %d is too large", n)
		}
		rest := bytes.TrimSpace([]byte(p))
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, invalid(field, "certificate %d is not PEM (expected -----BEGIN CERTIFICATE-----)", n)
		}
		for len(rest) > 0 {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				return nil, invalid(field, "certificate %d: malformed PEM", n)
			}
			rest = bytes.TrimSpace(rest)
			if block.Type != "CERTIFICATE" {
				return nil, invalid(field, "certificate %d: a PEM block of type %q; only CERTIFICATE blocks are accepted", n, block.Type)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, invalid(field, "certificate %d is not a valid X.509 certificate", n)
			}
			if err := checkSigningCert(cert, now); err != nil {
				return nil, invalid(field, "certificate %d (%s): %s", n, cert.Subject.String(), err)
			}
			sum := sha256.Sum256(cert.Raw)
			if seen[sum] {
				continue
			}
			seen[sum] = true
			out = append(out, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})))
			if len(out) > maxCertificates {
				return nil, invalid(field, "too many certificates (at most %d)", maxCertificates)
			}
		}
	}
	return out, nil
}

// checkSigningCert refuses certificates no signature should be trusted
// with. Not-yet-valid certificates are accepted: an IdP announces its next
// key before it starts using it.
func checkSigningCert(c *x509.Certificate, now time.Time) error {
	if now.After(c.NotAfter) {
		return fmt.Errorf("expired on %s", c.NotAfter.UTC().Format(time.DateOnly))
	}
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSAKeyBits {
			return fmt.Errorf("RSA key of %d bits is too weak (at least %d)", bits, minRSAKeyBits)
		}
	case *ecdsa.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T (RSA or ECDSA required)", c.PublicKey)
	}
	return nil
}

// idpFromMetadata reads the three IdP settings out of an IdP metadata
// document. The metadata's signature is not checked: the admin who pastes
// it is the one vouching for it, as for the fields themselves.
func idpFromMetadata(doc string) (IdPInput, error) {
	const field = "metadata_xml"
	if len(doc) > maxMetadataLen {
		return IdPInput{}, invalid(field, "metadata is too large (at most %d bytes)", maxMetadataLen)
	}
	ed, err := parseIdPMetadata([]byte(doc))
	if err != nil {
		return IdPInput{}, invalid(field, "%v", err)
	}
	var idp *saml.IDPSSODescriptor
	for i := range ed.IDPSSODescriptors {
		d := &ed.IDPSSODescriptors[i]
		if strings.Contains(d.ProtocolSupportEnumeration, samlProtocolToken) {
			idp = d
			break
		}
	}
	if idp == nil {
		return IdPInput{}, invalid(field, "the metadata describes no SAML 2.0 identity provider (no IDPSSODescriptor)")
	}
	in := IdPInput{EntityID: ed.EntityID}
	for _, ep := range idp.SingleSignOnServices {
		if ep.Binding == saml.HTTPRedirectBinding {
			in.SSOURL = strings.TrimSpace(ep.Location)
			break
		}
	}
	if in.SSOURL == "" {
		return IdPInput{}, invalid(field, "the metadata has no SingleSignOnService with the HTTP-Redirect binding")
	}
	// Optional: without one, signing out ends only the gateway's session.
	for _, ep := range idp.SingleLogoutServices {
		if ep.Binding == saml.HTTPRedirectBinding {
			in.SLOURL = strings.TrimSpace(ep.Location)
			break
		}
	}
	for _, kd := range idp.KeyDescriptors {
		if kd.Use != "" && kd.Use != "signing" {
			continue
		}
		for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
			der, err := base64.StdEncoding.DecodeString(strings.Map(dropSpace, xc.Data))
			if err != nil {
				return IdPInput{}, invalid(field, "the metadata holds a certificate that is not valid base64")
			}
			in.Certificates = append(in.Certificates, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
		}
	}
	if len(in.Certificates) == 0 {
		return IdPInput{}, invalid(field, "the metadata has no signing certificate")
	}
	return in, nil
}

func dropSpace(r rune) rune {
	if unicode.IsSpace(r) {
		return -1
	}
	return r
}

// storedCerts parses certificates saved by SetIdP; ones that no longer
// parse (they always should) are skipped.
func storedCerts(pems []string) []*x509.Certificate {
	var out []*x509.Certificate
	for _, p := range pems {
		block, _ := pem.Decode([]byte(p))
		if block == nil || block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
	return out
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func certInfo(c *x509.Certificate, now time.Time) CertInfo {
	return CertInfo{
		Subject:   c.Subject.String(),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		SHA256:    fingerprint(c),
		Expired:   now.After(c.NotAfter),
	}
}
