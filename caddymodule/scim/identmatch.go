package scim

import (
	"github.com/scim2/filter-parser/v2"

	"github.com/ssogate/ssogate/identity"
	"github.com/ssogate/ssogate/store"
)

// The filter library compares caseExact=false strings after
// strings.ToLower, whose Unicode folding makes "\u212Aim@example.com"
// (KELVIN SIGN) equal "kim@example.com". An IdP's provisioning client
// looks users and groups up by filter before it changes them, so an
// equality on an identity attribute is decided here instead, by the rule
// the store's indexes use (package identity).

// userIdentityLeaf decides an equality leaf on userName or an email
// value; ok is false for any other leaf.
func userIdentityLeaf(leaf filter.Expression, u *store.User) (match, ok bool) {
	switch e := leaf.(type) {
	case *filter.AttributeExpression:
		v, isString := e.CompareValue.(string)
		if !isString || e.Operator != filter.EQ || !coreURI(e.AttributePath, userSchema.ID) {
			return false, false
		}
		name, sub := identity.Fold(e.AttributePath.AttributeName), identity.Fold(e.AttributePath.SubAttributeName())
		switch {
		case name == "username" && sub == "":
			return identity.Key(u.UserName) == identity.Key(v), true
		case name == "emails" && (sub == "value" || sub == ""):
			return hasEmail(u, v), true
		}
	case *filter.ValuePath:
		// emails[value eq "…"] alone; a bracket with more in it is left to
		// the library, after the candidates came from the exact index.
		if identity.Fold(e.AttributePath.AttributeName) != "emails" || !coreURI(e.AttributePath, userSchema.ID) {
			return false, false
		}
		if a, isAttr := e.ValueFilter.(*filter.AttributeExpression); isAttr {
			if v, eq := valueEquality(a); eq {
				return hasEmail(u, v), true
			}
		}
	}
	return false, false
}

func hasEmail(u *store.User, v string) bool {
	k := identity.Key(v)
	for _, e := range u.Emails {
		if identity.Key(e.Value) == k {
			return true
		}
	}
	return false
}

// groupIdentityLeaf decides an equality leaf on a group's displayName.
func groupIdentityLeaf(leaf filter.Expression, g *store.Group) (match, ok bool) {
	e, isAttr := leaf.(*filter.AttributeExpression)
	if !isAttr || e.Operator != filter.EQ || e.AttributePath.SubAttribute != nil || !coreURI(e.AttributePath, groupSchema.ID) ||
		identity.Fold(e.AttributePath.AttributeName) != "displayname" {
		return false, false
	}
	v, isString := e.CompareValue.(string)
	if !isString {
		return false, false
	}
	return identity.EqualFold(g.DisplayName, v), true
}
