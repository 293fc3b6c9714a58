package orgs

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	"github.com/ssogate/ssogate/identity"
	"github.com/ssogate/ssogate/store"
)

// TXTPrefix starts the value of the DNS TXT record that proves control of a
// domain: "ssogate-verification=<token>", published at the domain itself.
const TXTPrefix = "ssogate-verification="

// dnsTimeout bounds one verification lookup, so a dead resolver answers the
// admin's click with an error rather than a hang.
const dnsTimeout = 5 * time.Second

// How a domain was verified (store.Domain.VerifiedBy).
const (
	// VerifiedByDNS: its TXT record was found; it is re-checked
	// periodically (RecheckDomains).
	VerifiedByDNS = "dns"
	// VerifiedByOperator: the operator vouched for it (verify with
	// force); DNS is never consulted for it.
	VerifiedByOperator = "operator"
)

// forcedResult is the check result recorded on a domain the operator
// vouched for.
const forcedResult = "marked verified by the operator"

// domainProfile maps user input (upper case, full-width dots, Unicode) to
// the ASCII form used on the wire, and refuses what is not a host name.
// Profiles are immutable once built.
var domainProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
)

// tokenEncoding writes verification tokens in lower case without padding,
// which survives DNS consoles that fold case or choke on '='.
var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// DomainView is a domain with the DNS record that verifies it.
type DomainView struct {
	store.Domain
	// Unicode is the domain's Unicode form when it differs from Name (an
	// internationalized domain).
	Unicode   string    `json:"unicode,omitempty"`
	TXTRecord TXTRecord `json:"txt_record"`
}

// TXTRecord is the DNS record an admin publishes to prove control of a
// domain.
type TXTRecord struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

func domainView(d *store.Domain) DomainView {
	v := DomainView{
		Domain:    *d,
		TXTRecord: TXTRecord{Name: d.Name, Type: "TXT", Value: TXTPrefix + d.Token},
	}
	if u, err := idna.Display.ToUnicode(d.Name); err == nil && u != d.Name {
		v.Unicode = u
	}
	return v
}

// NormalizeDomain returns the canonical (lower-case, punycode) form of an
// email domain an organization may claim, or an *Error saying why it
// cannot be claimed: IP addresses, single-label names and public suffixes
// (com, co.uk, github.io, ...) are refused, since nobody can prove they own
// the mail of a whole suffix.
func NormalizeDomain(raw string) (string, error) {
	const field = "name"
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", invalid(field, "domain name is required")
	}
	if len(s) > 1024 {
		return "", invalid(field, "domain name is too long")
	}
	switch {
	case strings.Contains(s, "@"):
		return "", invalid(field, "give the domain (example.com), not an email address")
	case strings.Contains(s, "/"):
		return "", invalid(field, "give the domain name only (example.com), not a URL")
	}
	s = strings.TrimSuffix(s, ".")
	if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); ip != nil {
		return "", invalid(field, "%q is an IP address; give a domain name", s)
	}
	ascii, err := domainProfile.ToASCII(s)
	if err != nil {
		return "", invalid(field, "%q is not a valid domain name", s)
	}
	ascii = identity.Fold(ascii)
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", invalid(field, "%q is a single-label name; give a full domain such as example.com", s)
	}
	if len(ascii) > 253 {
		return "", invalid(field, "domain name is too long")
	}
	// The same rule as every address's domain (package identity), so that
	// a verified domain and the addresses in it meet in one form.
	if d, err := identity.Domain(ascii); err != nil || d != ascii {
		return "", invalid(field, "%q is not a valid domain name", s)
	}
	if suffix, _ := publicsuffix.PublicSuffix(ascii); suffix == ascii {
		return "", invalid(field, "%q is a public suffix; give a domain registered under it", s)
	}
	return ascii, nil
}

// lookupDomainName turns a name given to find an existing domain into the
// stored form. It is lenient on purpose: a domain added before the public
// suffix list changed must still be removable.
func lookupDomainName(raw string) string {
	if n, err := NormalizeDomain(raw); err == nil {
		return n
	}
	s := strings.TrimSuffix(strings.TrimSpace(raw), ".")
	if a, err := idna.Lookup.ToASCII(s); err == nil {
		return identity.Fold(a)
	}
	return identity.Fold(s)
}

// NewResolver returns a resolver that sends every verification query to
// the DNS server at addr (host:port), for gateways whose system resolver
// does not see the public DNS (split horizon) or is not to be trusted with
// it.
func NewResolver(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating verification token: %w", err)
	}
	return strings.ToLower(tokenEncoding.EncodeToString(b)), nil
}

// ListDomains lists an organization's domains.
func (s *Service) ListDomains(orgID string) ([]DomainView, error) {
	if _, err := s.getOrg(orgID); err != nil {
		return nil, err
	}
	domains, err := s.store.ListDomains(orgID)
	if err != nil {
		return nil, orgErr(orgID, err, "listing domains of")
	}
	out := make([]DomainView, 0, len(domains))
	for _, d := range domains {
		out = append(out, domainView(d))
	}
	return out, nil
}

// AddDomain claims a domain for an organization, pending verification.
// A domain another organization has verified cannot be claimed; pending
// claims of other organizations do not block it.
func (s *Service) AddDomain(actor, orgID, name string) (*DomainView, error) {
	name, err := NormalizeDomain(name)
	if err != nil {
		return nil, err
	}
	if _, err := s.getOrg(orgID); err != nil {
		return nil, err
	}
	existing, err := s.store.ListDomains(orgID)
	if err != nil {
		return nil, orgErr(orgID, err, "listing domains of")
	}
	if len(existing) >= maxDomainsPerOrg {
		return nil, conflict("organization %q already has %d domains, the most allowed", orgID, maxDomainsPerOrg)
	}
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	d := &store.Domain{
		Name:    name,
		OrgID:   orgID,
		Token:   token,
		Status:  store.DomainPending,
		Created: time.Now().UTC(),
	}
	if err := s.store.AddDomain(d); err != nil {
		switch {
		case errors.Is(err, store.ErrExists):
			return nil, conflictField("name", "domain %q is already added to organization %q", name, orgID)
		case errors.Is(err, store.ErrConflict):
			return nil, conflictField("name", "domain %q is verified by another organization", name)
		}
		return nil, orgErr(orgID, err, "adding a domain to")
	}
	s.audit(orgID, actor, "domain.add", OutcomeSuccess, map[string]string{"domain": name})
	stored, err := s.store.GetDomain(orgID, name)
	if err != nil {
		return nil, fmt.Errorf("reading domain %q back: %w", name, err)
	}
	v := domainView(stored)
	return &v, nil
}

// RemoveDomain removes a domain from an organization, which frees it for
// others. Sign-ins from it stop at once.
func (s *Service) RemoveDomain(actor, orgID, name string) error {
	if _, err := s.getOrg(orgID); err != nil {
		return err
	}
	name = lookupDomainName(name)
	if err := s.store.RemoveDomain(orgID, name); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return domainNotFound(orgID, name)
		}
		return orgErr(orgID, err, "removing a domain from")
	}
	s.audit(orgID, actor, "domain.remove", OutcomeSuccess, map[string]string{"domain": name})
	return nil
}

func domainNotFound(orgID, name string) *Error {
	return notFound("domain %q not found in organization %q", name, orgID)
}

// VerifyDomain proves an organization controls a domain. With force, the
// caller vouches for it (an operator privilege: the configurator must never
// pass true). Otherwise the domain's TXT records must include the
// organization's "ssogate-verification=<token>"; the result of the check is
// recorded on the domain either way, and a failed check is returned as a
// 409 *Error whose message says what was found. The first organization to
// verify a domain wins.
func (s *Service) VerifyDomain(ctx context.Context, actor, orgID, name string, force bool) (*DomainView, error) {
	if _, err := s.getOrg(orgID); err != nil {
		return nil, err
	}
	name = lookupDomainName(name)
	d, err := s.store.GetDomain(orgID, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return nil, domainNotFound(orgID, name)
		}
		return nil, orgErr(orgID, err, "reading a domain of")
	}
	if d.Status == store.DomainVerified {
		v := domainView(d)
		return &v, nil
	}

	var matched bool
	var result string
	method := VerifiedByDNS
	if force {
		matched, result, method = true, forcedResult, VerifiedByOperator
	} else {
		var verdict txtVerdict
		verdict, result = s.checkTXT(ctx, name, d.Token)
		matched = verdict == txtFound
	}

	now := time.Now().UTC()
	updated, err := s.store.UpdateDomain(orgID, name, func(cur *store.Domain) error {
		// The domain may have been removed and added again (new token)
		// while DNS was asked; the answer is then about the old token.
		if subtle.ConstantTimeCompare([]byte(cur.Token), []byte(d.Token)) != 1 {
			return conflict("domain %q changed during verification; try again", name)
		}
		cur.LastCheck = now
		cur.LastResult = result
		if matched {
			cur.Status = store.DomainVerified
			cur.VerifiedAt = now
			cur.VerifiedBy = method
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.recordCheck(orgID, name, now, "verified by another organization")
			s.audit(orgID, actor, "domain.verify", OutcomeFailure, map[string]string{"domain": name, "method": method, "result": "verified by another organization"})
			return nil, conflict("domain %q is already verified by another organization", name)
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil, domainNotFound(orgID, name)
		}
		return nil, orgErr(orgID, err, "verifying a domain of")
	}
	if !matched {
		s.audit(orgID, actor, "domain.verify", OutcomeFailure, map[string]string{"domain": name, "method": method, "result": result})
		return nil, conflict("domain %q is not verified: %s", name, result)
	}
	s.audit(orgID, actor, "domain.verify", OutcomeSuccess, map[string]string{"domain": name, "method": method})
	v := domainView(updated)
	return &v, nil
}

// recordCheck stores a failed check's result on a domain that stays
// pending. Best effort: the caller is already returning the failure.
func (s *Service) recordCheck(orgID, name string, at time.Time, result string) {
	_, err := s.store.UpdateDomain(orgID, name, func(cur *store.Domain) error {
		cur.LastCheck = at
		cur.LastResult = result
		return nil
	})
	if err != nil {
		s.logger.Warn("recording domain check result", zap.String("org", orgID), zap.String("domain", name), zap.Error(err))
	}
}

// txtVerdict is what a TXT lookup proved.
type txtVerdict int

const (
	// txtFound: the expected record is published.
	txtFound txtVerdict = iota
	// txtAbsent: DNS answered, and the record is not there (no such
	// name, no TXT records, or only other ones).
	txtAbsent
	// txtUnknown: DNS did not answer usefully (timeout, SERVFAIL,
	// refused, unreachable server); nothing can be concluded.
	txtUnknown
)

// checkTXT asks DNS for the domain's TXT records and says whether the
// expected one is among them, with a result line for the admin. The
// lookup is bounded by dnsTimeout.
func (s *Service) checkTXT(ctx context.Context, name, token string) (txtVerdict, string) {
	resolver := s.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	want := []byte(TXTPrefix + token)
	// The trailing dot makes the name absolute: the resolver's search
	// list must not turn "example.com" into "example.com.corp.internal".
	records, err := resolver.LookupTXT(ctx, name+".")
	if err != nil {
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return txtAbsent, fmt.Sprintf("no TXT record found at %s; publish %q there", name, string(want))
		case errors.As(err, &dnsErr) && dnsErr.IsTimeout, errors.Is(err, context.DeadlineExceeded):
			return txtUnknown, "DNS lookup timed out"
		case errors.Is(err, context.Canceled):
			return txtUnknown, "DNS lookup canceled"
		case errors.As(err, &dnsErr):
			return txtUnknown, "DNS lookup failed: " + dnsErr.Err
		}
		return txtUnknown, "DNS lookup failed"
	}
	for _, r := range records {
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(r)), want) == 1 {
			return txtFound, "TXT record found"
		}
	}
	if len(records) == 0 {
		return txtAbsent, fmt.Sprintf("no TXT record found at %s; publish %q there", name, string(want))
	}
	return txtAbsent, fmt.Sprintf("TXT records found at %s, but none is %q", name, string(want))
}
