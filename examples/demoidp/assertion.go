package demoidp

import (
	"fmt"

	"github.com/crewjam/saml"
)

// The attribute names of the vendor guide's Okta setup ("Attribute
// Statements" and "Group Attribute Statements"), all with the unspecified
// name format.
const (
	AttrObjectID    = "objectidentifier" // user.id
	AttrName        = "name"             // user.login, the email
	AttrDisplayName = "displayName"      // user.displayName
	AttrGroups      = "groups"           // one value per group name
	// Not in the guide, but what Okta admins usually add for first and last
	// name; asserted only when set.
	AttrFirstName = "firstName"
	AttrLastName  = "lastName"

	// NameFormatUnspecified is the name format of all of the above.
	NameFormatUnspecified = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"
)

// guideAssertionMaker makes the assertion exactly as saml.DefaultAssertionMaker
// does (subject, conditions, audience, recipient, InResponseTo, authn
// statement), and then replaces its attributes with the guide's, as an Okta
// application set up by the guide sends only those.
type guideAssertionMaker struct {
	users map[string]User // by normalized email; read-only
}

// MakeAssertion implements saml.AssertionMaker.
func (m guideAssertionMaker) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	// samlidp sessions carry the user's store name; ObjectID is not part of
	// samlidp's user record, so it comes from the configuration.
	user, ok := m.users[normalizeEmail(session.UserName)]
	if !ok {
		return fmt.Errorf("demoidp: session for unknown user %q", session.UserName)
	}
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		return err
	}
	req.Assertion.AttributeStatements = []saml.AttributeStatement{{
		Attributes: guideAttributes(user, session.Groups),
	}}
	return nil
}

// guideAttributes returns the attributes asserted for user. groups is the
// session's copy of the user's groups, as samlidp stored them.
func guideAttributes(user User, groups []string) []saml.Attribute {
	attrs := []saml.Attribute{
		stringAttribute(AttrObjectID, user.ObjectID),
		stringAttribute(AttrName, user.Email),
	}
	if user.DisplayName != "" {
		attrs = append(attrs, stringAttribute(AttrDisplayName, user.DisplayName))
	}
	if user.GivenName != "" {
		attrs = append(attrs, stringAttribute(AttrFirstName, user.GivenName))
	}
	if user.FamilyName != "" {
		attrs = append(attrs, stringAttribute(AttrLastName, user.FamilyName))
	}
	// Okta leaves the group attribute out when no group matches its filter.
	if len(groups) > 0 {
		attrs = append(attrs, stringAttribute(AttrGroups, groups...))
	}
	return attrs
}

func stringAttribute(name string, values ...string) saml.Attribute {
	attr := saml.Attribute{Name: name, NameFormat: NameFormatUnspecified}
	for _, v := range values {
		attr.Values = append(attr.Values, saml.AttributeValue{Type: "xs:string", Value: v})
	}
	return attr
}

// SetAttribute replaces the values of the attribute name in the assertion's
// first attribute statement, adding the attribute if it is missing; with no
// values it removes the attribute. It is meant for the mutate functions of
// Respond and Unsolicited.
func SetAttribute(a *saml.Assertion, name string, values ...string) {
	if len(a.AttributeStatements) == 0 {
		if len(values) == 0 {
			return
		}
		a.AttributeStatements = []saml.AttributeStatement{{}}
	}
	stmt := &a.AttributeStatements[0]
	kept := stmt.Attributes[:0]
	for _, attr := range stmt.Attributes {
		if attr.Name != name {
			kept = append(kept, attr)
		}
	}
	stmt.Attributes = kept
	if len(values) > 0 {
		stmt.Attributes = append(stmt.Attributes, stringAttribute(name, values...))
	}
}
