package samlsp

import (
	"encoding/xml"
	"slices"
	"strings"

	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/identity"
	"github.com/ssogate/ssogate/store"
)

// Attribute names, the guide's (Okta) names first, then the claim URIs
// Entra ID, Okta, Ping, ADFS and Shibboleth use for the same thing.
var (
	objectIDNames = []string{
		"objectidentifier",
		"http://schemas.microsoft.com/identity/claims/objectidentifier",
		"urn:oasis:names:tc:SAML:attribute:subject-id",
		"urn:oid:1.3.6.1.4.1.5923.1.1.1.13", // eduPersonUniqueId
	}
	// The guide's "name" first, then the attributes that are an email
	// address by definition, then those that often are one: Entra's
	// claims/name is the UPN (not always the mail address), and ADFS and
	// hand-made claim rules put a display name there. The first value
	// that is an address wins (see emailOf).
	emailNames = []string{
		"name",
		"email",
		"emailaddress",
		"mail",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
		"urn:oid:0.9.2342.19200300.100.1.3", // mail
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
		"urn:oid:1.3.6.1.4.1.5923.1.1.1.6", // eduPersonPrincipalName
	}
	displayNameNames = []string{
		"displayName",
		"http://schemas.microsoft.com/identity/claims/displayname",
		"urn:oid:2.16.840.1.113730.3.1.241",
		"cn",
		"urn:oid:2.5.4.3",
	}
	givenNameNames = []string{
		"givenName", "firstName",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
		"urn:oid:2.5.4.42",
	}
	familyNameNames = []string{
		"sn", "surname", "lastName", "familyName",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
		"urn:oid:2.5.4.4",
	}
	groupNames = []string{
		"groups",
		"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
		"http://schemas.xmlsoap.org/claims/Group",
		"memberOf",
		"isMemberOf",
		"urn:oid:1.3.6.1.4.1.5923.1.5.1.1", // isMemberOf
	}
	groupOverageNames = []string{
		"http://schemas.microsoft.com/claims/groups.link",
	}
)

// identityOf reads the user out of a validated assertion.
func identityOf(a *saml.Assertion) (*Identity, error) {
	id := &Identity{AssertionID: a.ID, AssertionSigned: a.Signature != nil}
	if a.Subject != nil {
		for _, sc := range a.Subject.SubjectConfirmations {
			if d := sc.SubjectConfirmationData; d != nil && d.InResponseTo != "" {
				id.InResponseTo = d.InResponseTo
				break
			}
		}
	}
	if a.Subject != nil && a.Subject.NameID != nil {
		id.NameID = strings.TrimSpace(a.Subject.NameID.Value)
		id.NameIDFormat = strings.TrimSpace(a.Subject.NameID.Format)
	}
	attrs := collect(a)
	id.ObjectID = first(attrs, objectIDNames)
	id.Email = NormalizeEmail(emailOf(attrs))
	if id.Email == "" && strings.Contains(id.NameID, "@") {
		id.Email = NormalizeEmail(id.NameID)
	}
	// Only a persistent NameID is an identifier the IdP keeps for the
	// user (saml-core §8.3.7). A transient one is new at every sign-in
	// (pysaml2's and SimpleSAMLphp's default), and an email or unspecified
	// one is whatever the IdP maps there today: taken as the user's ID,
	// the next sign-in looked like another person and was refused.
	if id.ObjectID == "" && id.NameIDFormat == string(saml.PersistentNameIDFormat) {
		id.ObjectID = id.NameID
	}
	id.DisplayName = first(attrs, displayNameNames)
	id.GivenName = first(attrs, givenNameNames)
	id.FamilyName = first(attrs, familyNameNames)
	id.Groups = all(attrs, groupNames)
	for _, st := range a.AttributeStatements {
		for _, attr := range st.Attributes {
			if !slices.Contains(id.AttributeNames, attr.Name) {
				id.AttributeNames = append(id.AttributeNames, attr.Name)
			}
		}
	}
	id.GroupsOverage = first(attrs, groupOverageNames) != ""
	for _, st := range a.AuthnStatements {
		if st.SessionNotOnOrAfter != nil && (id.SessionNotOnOrAfter.IsZero() || st.SessionNotOnOrAfter.Before(id.SessionNotOnOrAfter)) {
			id.SessionNotOnOrAfter = *st.SessionNotOnOrAfter
		}
		if id.SessionIndex == "" {
			id.SessionIndex = st.SessionIndex
		}
		if !st.AuthnInstant.IsZero() && (id.AuthnInstant.IsZero() || st.AuthnInstant.Before(id.AuthnInstant)) {
			id.AuthnInstant = st.AuthnInstant
		}
	}
	// SPEC §3.3: an empty NameID is refused even when attributes name the
	// user; the subject of an assertion is its NameID.
	if id.NameID == "" {
		return nil, refuseAs(KindNoNameID, "assertion has an empty NameID")
	}
	if id.Email == "" {
		return nil, refuseAs(KindNoEmail, "assertion names no email (attribute \"name\" or the NameID)")
	}
	// One address, in its canonical form (identity.ParseEmail): a value
	// such as "alice@evil.test@example.com" or "a@example.com, b@example.com"
	// would otherwise pass the domain check as one person and reach the
	// upstream as another.
	if _, err := identity.ParseEmail(id.Email); err != nil {
		return nil, refuseAs(KindBadEmail, "asserted login is not an email address: %v", err)
	}
	return id, nil
}

// collect indexes attribute values by Name and FriendlyName, folding case
// so that `displayname` and `displayName` meet. Values are trimmed and
// empty ones dropped.
func collect(a *saml.Assertion) map[string][]string {
	out := map[string][]string{}
	for _, st := range a.AttributeStatements {
		for _, attr := range st.Attributes {
			var vals []string
			for _, v := range attr.Values {
				if s := strings.TrimSpace(v.Value); s != "" {
					vals = append(vals, s)
				}
			}
			for _, n := range []string{attr.Name, attr.FriendlyName} {
				if n != "" {
					k := strings.ToLower(n)
					out[k] = append(out[k], vals...)
				}
			}
		}
	}
	return out
}

func first(attrs map[string][]string, names []string) string {
	for _, n := range names {
		if v := attrs[strings.ToLower(n)]; len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// emailOf is the first value of emailNames that looks like an address,
// so that a display name under an email-ish name does not hide the
// address under the next; failing that, the first value, which
// identityOf then refuses with its reason.
func emailOf(attrs map[string][]string) string {
	for _, n := range emailNames {
		for _, v := range attrs[strings.ToLower(n)] {
			if strings.Contains(v, "@") {
				return v
			}
		}
	}
	return first(attrs, emailNames)
}

func all(attrs map[string][]string, names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		for _, v := range attrs[strings.ToLower(n)] {
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

// NormalizeEmail trims an address and returns its canonical form (see
// identity.ParseEmail: the local part as given, the domain as a lower-case
// A-label); a value that is not one address comes back trimmed only, for
// the caller to refuse. Case is never folded here: matching folds ASCII
// case only (identity.Key), so that no look-alike character of another
// script passes for an ASCII letter.
func NormalizeEmail(s string) string {
	s = strings.TrimSpace(s)
	if e, err := identity.ParseEmail(s); err == nil {
		return e
	}
	return s
}

// EmailDomain returns the canonical domain of a single address, or "".
func EmailDomain(email string) string { return identity.EmailDomain(email) }

func xmlMarshal(v any) ([]byte, error) {
	out, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), out...), nil
}

// ReplayCache is the persistent, shared replay cache of one
// organization's assertions, kept in the store. ParseResponse reads it;
// the caller records an admitted assertion under Identity.ReplayKey.
type ReplayCache struct {
	st  *store.Store
	org string
}

// NewReplayCache is the replay cache of orgID's assertions in st.
func NewReplayCache(st *store.Store, orgID string) *ReplayCache {
	return &ReplayCache{st: st, org: orgID}
}

// Key scopes an assertion ID to the org: two IdPs may well issue the
// same ID.
func (c *ReplayCache) Key(assertionID string) string {
	return "saml/" + c.org + "/" + assertionID
}
