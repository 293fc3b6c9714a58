package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	scimerrors "github.com/elimity-com/scim/errors"

	"github.com/ssogate/ssogate/identity"
	"github.com/ssogate/ssogate/store"
)

// Resources are held to the limits as they would be stored, after the
// request (a PATCH included) has been applied to them, and before the
// store writes anything: a request over a cap changes nothing.

// checkUser holds a user to the limits.
func (l Limits) checkUser(u *store.User) error {
	if err := checkUserName(u.UserName); err != nil {
		return err
	}
	if len(u.Emails) > l.MaxMultiValued {
		return badValue(fmt.Sprintf("emails has %d values; at most %d are accepted.", len(u.Emails), l.MaxMultiValued))
	}
	for _, e := range u.Emails {
		if err := checkAddress("emails.value", e.Value); err != nil {
			return err
		}
		if err := l.checkLine("emails.type", e.Type); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{
		{attrExternalID, u.ExternalID},
		{attrDisplayName, u.DisplayName},
		{"name.givenName", u.GivenName},
		{"name.familyName", u.FamilyName},
	} {
		if err := l.checkLine(f.name, f.v); err != nil {
			return err
		}
	}
	if err := l.checkValue("", u.SCIM, 0); err != nil {
		return err
	}
	raw, err := json.Marshal(userAttributes(u))
	if err != nil {
		return badValue("The user cannot be represented as JSON.")
	}
	if n := len(raw) + len(u.ExternalID); n > l.MaxResourceBytes {
		return badValue(fmt.Sprintf("The user would be %d bytes long; at most %d are accepted.", n, l.MaxResourceBytes))
	}
	return nil
}

// checkGroup holds a group to the limits.
func (l Limits) checkGroup(g *store.Group) error {
	if err := l.checkLine(attrDisplayName, g.DisplayName); err != nil {
		return err
	}
	if err := l.checkLine(attrExternalID, g.ExternalID); err != nil {
		return err
	}
	if len(g.Members) > l.MaxGroupMembers {
		return badValue(fmt.Sprintf("The group would have %d members; at most %d are accepted.", len(g.Members), l.MaxGroupMembers))
	}
	for _, m := range g.Members {
		if len(m) > l.MaxStringLength || strings.ContainsFunc(m, isControl) {
			return badValue("A member value is not a user id of this organization.")
		}
	}
	return nil
}

// checkLine bounds a single-line text attribute: no control characters
// (they end up in identity headers and logs), at most MaxStringLength
// bytes.
func (l Limits) checkLine(name, v string) error {
	if len(v) > l.MaxStringLength {
		return badValue(fmt.Sprintf("%s is %d bytes long; at most %d are accepted.", name, len(v), l.MaxStringLength))
	}
	if strings.ContainsFunc(v, isControl) {
		return badValue(name + " must not contain control characters.")
	}
	return nil
}

// checkValue bounds the attributes kept as given (title, addresses,
// phoneNumbers, the enterprise extension, ...): strings, values per
// multi-valued attribute, and NUL, which no attribute has a use for.
// Their depth is the schema's, and the body's was capped already.
func (l Limits) checkValue(name string, v any, depth int) error {
	switch v := v.(type) {
	case string:
		if len(v) > l.MaxStringLength {
			return badValue(fmt.Sprintf("%s is %d bytes long; at most %d are accepted.", name, len(v), l.MaxStringLength))
		}
		if strings.ContainsRune(v, 0) {
			return badValue(name + " must not contain NUL characters.")
		}
	case []any:
		if len(v) > l.MaxMultiValued {
			return badValue(fmt.Sprintf("%s has %d values; at most %d are accepted.", name, len(v), l.MaxMultiValued))
		}
		for _, el := range v {
			if err := l.checkValue(name, el, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		if depth > l.MaxJSONDepth {
			return badValue("The user's attributes nest too deeply.")
		}
		for k, el := range v {
			sub := k
			if name != "" {
				sub = name + "." + k
			}
			if err := l.checkValue(sub, el, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// isControl tells characters that have no place in a name or address:
// C0 and C1 controls, and format characters (bidirectional overrides,
// zero-width joiners) that make one name display as another.
func isControl(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// checkUserName bounds userName. One with an "@" is an email address, as
// every userName of a user ssogate creates itself is (sign-in and local
// accounts): sign-in matches it against the address the IdP asserts and
// the identity headers pass it on as the user's address when no email is
// given, so it must be a well-formed one. One without is a login name
// (Microsoft's provisioning examples and Entra ID mappings to
// mailNickname send such names): it never matches an asserted address,
// and only needs to be one printable word.
func checkUserName(v string) error {
	if strings.Contains(v, "@") {
		return checkAddress(attrUserName, v)
	}
	if len(v) > maxEmailLength {
		return badValue(fmt.Sprintf("userName is %d bytes long; at most %d are accepted.", len(v), maxEmailLength))
	}
	if v == "" || strings.ContainsFunc(v, func(r rune) bool { return isControl(r) || unicode.IsSpace(r) }) {
		return badValue("userName must be one word without spaces or control characters.")
	}
	// The identity headers carry it; an upstream reading one as an HTTP
	// list would split it at a comma.
	if strings.ContainsRune(v, ',') {
		return badValue("userName must not contain a comma.")
	}
	return nil
}

// checkAddress requires an email address.
func checkAddress(name, v string) error {
	if v == "" {
		return badValue(name + " is required.")
	}
	if len(v) > maxEmailLength {
		return badValue(fmt.Sprintf("%s is %d bytes long; an email address has at most %d.", name, len(v), maxEmailLength))
	}
	if strings.ContainsFunc(v, func(r rune) bool { return isControl(r) || unicode.IsSpace(r) }) {
		return badValue(name + " must not contain spaces or control characters.")
	}
	// Exactly one addr-spec: no second '@', comma, quotes or comments,
	// which would let one value pass the domain check as one person and
	// reach an upstream as another.
	if _, err := identity.ParseEmail(v); err != nil {
		return badValue(name + " " + strconv.Quote(v) + " is not a single email address (like alice@example.com).")
	}
	return nil
}

// addressDomain returns the domain of an address in the form verified
// domains are stored in (ASCII, lower case), or "".
func addressDomain(addr string) string { return identity.EmailDomain(addr) }

// userDomains returns the domains of the user's addresses.
func userDomains(u *store.User) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range append([]string{u.UserName}, emailValues(u)...) {
		if d := addressDomain(a); d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

func emailValues(u *store.User) []string {
	out := make([]string, len(u.Emails))
	for i, e := range u.Emails {
		out[i] = e.Value
	}
	return out
}

// checkDomains refuses addresses in a domain another organization has
// verified, as local accounts are refused (orgs.Service.localAddress): such
// a user would pass for one of that organization's people upstream, since
// the identity headers carry the stored address. Addresses in domains no
// organization has verified are accepted (IdPs provision before the
// domain is verified, and personal addresses sit next to work ones);
// they never route a sign-in.
func (s *Server) checkDomains(org string, domains []string) error {
	for _, d := range domains {
		owner, err := s.cfg.Store.OrgForDomain(d)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return s.storeError(err, "", "")
		default:
			if err := foreignDomain(org, d, owner); err != nil {
				return err
			}
		}
	}
	return nil
}

// foreignDomain refuses domain d, verified by owner ("" for nobody), in
// an address of a user of org.
func foreignDomain(org, d, owner string) error {
	if owner != "" && owner != org {
		return badValue("The domain " + d + " is verified by another organization; its addresses cannot belong to users of this one.")
	}
	return nil
}

// quotaError is the answer to a write that would take the organization
// past one of its totals.
func quotaError(what string, limit int) error {
	return scimerrors.ScimError{Status: http.StatusForbidden,
		Detail: fmt.Sprintf("The organization has reached its limit of %d %s; ask the gateway's operator to raise it.", limit, what)}
}

// storedBytesError is the quotaError of max_stored_bytes (store.ErrQuota).
func (l Limits) storedBytesError() error {
	return scimerrors.ScimError{Status: http.StatusForbidden,
		Detail: fmt.Sprintf("This change would take the organization's users and groups past their storage limit of %d bytes; delete some, or ask the gateway's operator to raise it.", l.MaxStoredBytes)}
}

// capped holds a store write to MaxStoredBytes.
func (l Limits) capped() store.WriteOption { return store.MaxStoredBytes(l.MaxStoredBytes) }
