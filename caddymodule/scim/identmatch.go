package scim

import (
	"strings"

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

// userIdentityLeaf decides a string comparison (eq, ne, co, sw, ew) on
// userName or an email value; ok is false for any other leaf.
func userIdentityLeaf(leaf filter.Expression, u *store.User) (match, ok bool) {
	switch e := leaf.(type) {
	case *filter.AttributeExpression:
		v, isString := e.CompareValue.(string)
		if !isString || !stringOp(e.Operator) || !coreURI(e.AttributePath, userSchema.ID) {
			return false, false
		}
		name, sub := identity.Fold(e.AttributePath.AttributeName), identity.Fold(e.AttributePath.SubAttributeName())
		switch {
		case name == "username" && sub == "":
			return compareKeys(e.Operator, identity.Key(u.UserName), identity.Key(v)), true
		case name == "emails" && (sub == "value" || sub == ""):
			return anyEmail(u, e.Operator, v), true
		}
	case *filter.ValuePath:
		// emails[value op "…"] alone; a bracket with more in it is left to
		// the library, after the candidates came from the exact index.
		if identity.Fold(e.AttributePath.AttributeName) != "emails" || !coreURI(e.AttributePath, userSchema.ID) {
			return false, false
		}
		a, isAttr := e.ValueFilter.(*filter.AttributeExpression)
		if !isAttr || a.AttributePath.SubAttribute != nil || identity.Fold(a.AttributePath.AttributeName) != "value" {
			return false, false
		}
		if v, isString := a.CompareValue.(string); isString && stringOp(a.Operator) {
			return anyEmail(u, a.Operator, v), true
		}
	}
	return false, false
}

// stringOp tells the operators decided here on identity attributes.
func stringOp(op filter.CompareOperator) bool {
	switch op {
	case filter.EQ, filter.NE, filter.CO, filter.SW, filter.EW:
		return true
	}
	return false
}

// compareKeys applies a string operator to two values in matching form.
func compareKeys(op filter.CompareOperator, have, want string) bool {
	switch op {
	case filter.EQ:
		return have == want
	case filter.NE:
		return have != want
	case filter.CO:
		return strings.Contains(have, want)
	case filter.SW:
		return strings.HasPrefix(have, want)
	case filter.EW:
		return strings.HasSuffix(have, want)
	}
	return false
}

// anyEmail tells whether some address of u passes the comparison (for
// ne: whether none equals v, as "emails.value ne" is read by the IdPs).
func anyEmail(u *store.User, op filter.CompareOperator, v string) bool {
	if op == filter.NE {
		return !hasEmail(u, v)
	}
	want := identity.Key(v)
	if op != filter.EQ {
		want = identity.Fold(v)
	}
	for _, e := range u.Emails {
		have := identity.Key(e.Value)
		if op != filter.EQ {
			have = identity.Fold(e.Value)
		}
		if compareKeys(op, have, want) {
			return true
		}
	}
	return false
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

// groupIdentityLeaf decides a string comparison on a group's displayName.
func groupIdentityLeaf(leaf filter.Expression, g *store.Group) (match, ok bool) {
	e, isAttr := leaf.(*filter.AttributeExpression)
	if !isAttr || !stringOp(e.Operator) || e.AttributePath.SubAttribute != nil || !coreURI(e.AttributePath, groupSchema.ID) ||
		identity.Fold(e.AttributePath.AttributeName) != "displayname" {
		return false, false
	}
	v, isString := e.CompareValue.(string)
	if !isString {
		return false, false
	}
	return compareKeys(e.Operator, identity.Fold(g.DisplayName), identity.Fold(v)), true
}
