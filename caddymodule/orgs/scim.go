package orgs

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

// scimTokenBytes is the SCIM token's entropy: 256 bits (SPEC §2).
const scimTokenBytes = 32

// SCIMToken is a freshly generated SCIM token with where to use it. It is
// the only time the token is ever shown.
type SCIMToken struct {
	Token       string `json:"token"`
	SCIMBaseURL string `json:"scim_base_url"`
}

// RotateSCIMToken generates a new SCIM bearer token for the organization
// and returns it. It replaces, and so revokes at once, any previous token.
// Only the token's SHA-256 is stored (the SCIM server compares hashes), so
// it cannot be shown again: a lost token is replaced by rotating. The
// audit event does not contain the token.
func (s *Service) RotateSCIMToken(actor, orgID string) (*SCIMToken, error) {
	if _, err := s.getOrg(orgID); err != nil {
		return nil, err
	}
	raw := make([]byte, scimTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generating SCIM token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	replaced := false
	now := time.Now().UTC()
	_, err := s.store.UpdateOrg(orgID, func(o *store.Org) error {
		replaced = len(o.SCIMTokenHash) > 0
		o.SCIMTokenHash = sum[:]
		o.SCIMTokenCreated = now
		o.SCIMTokenLastUsed = time.Time{}
		return nil
	})
	if err != nil {
		return nil, orgErr(orgID, err, "storing the SCIM token of")
	}
	s.audit(orgID, actor, "scim.token.rotate", OutcomeSuccess, map[string]string{"replaced_previous": fmt.Sprint(replaced)})
	return &SCIMToken{Token: token, SCIMBaseURL: s.SCIMBaseURL(orgID)}, nil
}

// SCIMBaseURL returns the organization's SCIM base URL, or "" when the
// Service does not know the gateway's URLs. The SCIM endpoints sit beside
// the SAML ones under the gateway's prefix (SPEC §2, §5):
// {base}{prefix}/saml/{org} is the SP entity ID and
// {base}{prefix}/scim/{org}/v2 the SCIM base URL.
func (s *Service) SCIMBaseURL(orgID string) string {
	if s.spURLs == nil {
		return ""
	}
	seg := "/" + url.PathEscape(orgID)
	prefix, ok := strings.CutSuffix(s.spURLs(orgID).EntityID, "/saml"+seg)
	if !ok {
		return ""
	}
	return prefix + "/scim" + seg + "/v2"
}
