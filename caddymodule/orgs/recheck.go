package orgs

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/store"
)

// RecheckActor is the actor the periodic domain re-check records in the
// audit trail.
const RecheckActor = "ssogate:domain-recheck"

// RecheckDomains re-verifies every DNS-verified domain of every
// organization; see RecheckDueDomains.
func (s *Service) RecheckDomains(ctx context.Context) (checked, lost int, err error) {
	return s.RecheckDueDomains(ctx, 0)
}

// RecheckDueDomains re-verifies the DNS-verified domains last checked more
// than maxAge ago (all of them when maxAge is 0). A domain whose TXT record
// is gone (the name does not exist, has no TXT records, or only other
// ones) becomes pending again, which stops routing sign-ins to its
// organization at once, and the loss is audited as "domain.lost". When DNS
// does not answer usefully (timeout, SERVFAIL, unreachable server) nothing
// is concluded: the domain stays verified and only the check's result is
// recorded, so a resolver outage never switches SSO off.
//
// Domains the operator vouched for are not checked. The work stops early,
// returning ctx's error, when ctx ends. Checked counts the domains whose
// DNS was asked, lost the ones unverified.
func (s *Service) RecheckDueDomains(ctx context.Context, maxAge time.Duration) (checked, lost int, err error) {
	orgs, err := s.store.ListOrgs()
	if err != nil {
		return 0, 0, fmt.Errorf("listing organizations: %w", err)
	}
	var errs []error
	for _, o := range orgs {
		domains, err := s.store.ListDomains(o.ID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted meanwhile
			}
			errs = append(errs, fmt.Errorf("listing domains of organization %q: %w", o.ID, err))
			continue
		}
		for _, d := range domains {
			if !dueForRecheck(d, maxAge, time.Now()) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return checked, lost, err
			}
			checked++
			gone, err := s.recheckDomain(ctx, d)
			if err != nil {
				errs = append(errs, err)
			}
			if gone {
				lost++
			}
		}
	}
	return checked, lost, errors.Join(errs...)
}

// dueForRecheck: DNS-verified, and not checked within maxAge.
func dueForRecheck(d *store.Domain, maxAge time.Duration, now time.Time) bool {
	if d.Status != store.DomainVerified || vouchedFor(d) {
		return false
	}
	return maxAge <= 0 || d.LastCheck.IsZero() || now.Sub(d.LastCheck) >= maxAge
}

// vouchedFor tells whether the operator verified the domain. Domains
// verified before VerifiedBy existed are recognised by their result line.
func vouchedFor(d *store.Domain) bool {
	return d.VerifiedBy == VerifiedByOperator || (d.VerifiedBy == "" && d.LastResult == forcedResult)
}

// recheckDomain checks one verified domain's TXT record and records the
// outcome; it reports whether the domain was unverified.
func (s *Service) recheckDomain(ctx context.Context, d *store.Domain) (bool, error) {
	verdict, result := s.checkTXT(ctx, d.Name, d.Token)
	if verdict == txtUnknown && ctx.Err() != nil {
		return false, nil // shutting down: the check did not happen
	}
	now := time.Now().UTC()
	lost := false
	_, err := s.store.UpdateDomain(d.OrgID, d.Name, func(cur *store.Domain) error {
		lost = false
		// Only the record that was checked may be changed: a domain
		// removed and added again, or unverified meanwhile, is left alone.
		if cur.Status != store.DomainVerified || subtle.ConstantTimeCompare([]byte(cur.Token), []byte(d.Token)) != 1 {
			return nil
		}
		cur.LastCheck = now
		cur.LastResult = result
		if verdict == txtAbsent {
			cur.Status = store.DomainPending
			cur.VerifiedAt = time.Time{}
			cur.VerifiedBy = ""
			lost = true
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil // removed meanwhile
	case err != nil:
		return false, fmt.Errorf("recording the re-check of domain %q of organization %q: %w", d.Name, d.OrgID, err)
	}
	if lost {
		s.audit(d.OrgID, RecheckActor, "domain.lost", OutcomeFailure, map[string]string{"domain": d.Name, "result": result})
		s.logger.Warn("domain lost its verification; sign-ins from it are no longer routed",
			zap.String("org", d.OrgID), zap.String("domain", d.Name), zap.String("result", result))
	} else if verdict == txtUnknown {
		s.logger.Warn("domain re-check inconclusive; the domain stays verified",
			zap.String("org", d.OrgID), zap.String("domain", d.Name), zap.String("result", result))
	}
	return lost, nil
}
