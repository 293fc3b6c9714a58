package store

import (
	"encoding/json"
	"fmt"

	"github.com/ssogate/ssogate/identity"
)

func validDomainStatus(st string) bool { return st == DomainPending || st == DomainVerified }

func checkDomainName(op, name string) error {
	if name == "" {
		return invalid(op, "empty domain name")
	}
	if name != identity.Fold(name) {
		return invalid(op, "domain %q is not normalized to lower case", name)
	}
	return nil
}

// verifiedBy returns the org holding the verified-domain index for name, or "".
func verifiedBy(txn Txn, name string) (string, error) {
	var org string
	if err := getJSON(txn, key(pVDom, name), &org); err != nil {
		if err == ErrNotFound {
			return "", nil
		}
		return "", err
	}
	return org, nil
}

// claimDomain makes orgID the holder of the verified domain name, or fails
// with ErrConflict if another org holds it.
func claimDomain(txn Txn, op, orgID, name string) error {
	holder, err := verifiedBy(txn, name)
	if err != nil {
		return err
	}
	switch holder {
	case orgID:
		return nil
	case "":
		_, err := setJSON(txn, key(pVDom, name), orgID, 0)
		return err
	default:
		return fmt.Errorf("store: %s: domain %q is verified by another organization: %w", op, name, ErrConflict)
	}
}

// releaseDomain drops the verified-domain index for name if orgID holds it.
func releaseDomain(txn Txn, orgID, name string) error {
	holder, err := verifiedBy(txn, name)
	if err != nil || holder != orgID {
		return err
	}
	return del(txn, key(pVDom, name))
}

// AddDomain records a domain claim of d.OrgID. d.Name must already be
// normalized (lower-case IDNA). Status defaults to DomainPending; Created is
// set when zero. ErrExists if the org already has it; ErrConflict if another
// org has verified it (pending claims by several orgs are allowed);
// ErrNotFound if the org does not exist.
func (s *Store) AddDomain(d *Domain) error {
	const op = "add domain"
	if d == nil {
		return invalid(op, "nil domain")
	}
	if err := need(op, "org id", d.OrgID); err != nil {
		return err
	}
	if err := checkDomainName(op, d.Name); err != nil {
		return err
	}
	c := *d
	if c.Status == "" {
		c.Status = DomainPending
	}
	if !validDomainStatus(c.Status) {
		return invalid(op, "status %q", c.Status)
	}
	if c.Created.IsZero() {
		c.Created = now()
	}
	if c.Status == DomainVerified && c.VerifiedAt.IsZero() {
		c.VerifiedAt = now()
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.update(op, func(txn Txn) error {
		if err := requireOrg(txn, op, c.OrgID); err != nil {
			return err
		}
		k := key(pDom, c.OrgID, c.Name)
		if ok, err := exists(txn, k); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("store: %s: domain %q: %w", op, c.Name, ErrExists)
		}
		holder, err := verifiedBy(txn, c.Name)
		if err != nil {
			return err
		}
		if holder != "" && holder != c.OrgID {
			return fmt.Errorf("store: %s: domain %q is verified by another organization: %w", op, c.Name, ErrConflict)
		}
		if c.Status == DomainVerified {
			if err := claimDomain(txn, op, c.OrgID, c.Name); err != nil {
				return err
			}
		}
		_, err = setJSON(txn, k, &c, 0)
		return err
	})
	if err != nil {
		return err
	}
	*d = c
	return nil
}

// GetDomain returns one domain of the org, or ErrNotFound.
func (s *Store) GetDomain(orgID, name string) (*Domain, error) {
	const op = "get domain"
	if err := need(op, "org id", orgID, "domain name", name); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	d := new(Domain)
	err := s.view(func(txn Txn) error {
		return wrapNotFound(getJSON(txn, key(pDom, orgID, name), d), op, "domain", name)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ListDomains returns the org's domains sorted by name.
func (s *Store) ListDomains(orgID string) ([]*Domain, error) {
	if err := need("list domains", "org id", orgID); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out := []*Domain{}
	err := s.view(func(txn Txn) error {
		return listJSON(txn, scanPrefix(pDom, orgID), 0, -1, func(b []byte) error {
			d := new(Domain)
			if err := json.Unmarshal(b, d); err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateDomain applies fn to the domain in one transaction (see UpdateOrg
// for fn's contract). Name and OrgID cannot change. A change to
// DomainVerified claims the domain for the org in the same transaction
// (ErrConflict if another org verified it first; VerifiedAt is set when
// zero); a change away from DomainVerified releases it.
func (s *Store) UpdateDomain(orgID, name string, fn func(*Domain) error) (*Domain, error) {
	const op = "update domain"
	if err := need(op, "org id", orgID, "domain name", name); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, invalid(op, "nil update function")
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var stored []byte
	err := s.update(op, func(txn Txn) error {
		k := key(pDom, orgID, name)
		d := new(Domain)
		if err := getJSON(txn, k, d); err != nil {
			return wrapNotFound(err, op, "domain", name)
		}
		if err := fn(d); err != nil {
			return err
		}
		if d.Name != name || d.OrgID != orgID {
			return invalid(op, "domain name and organization are immutable")
		}
		if !validDomainStatus(d.Status) {
			return invalid(op, "status %q", d.Status)
		}
		if d.Status == DomainVerified {
			if err := claimDomain(txn, op, orgID, name); err != nil {
				return err
			}
			if d.VerifiedAt.IsZero() {
				d.VerifiedAt = now()
			}
		} else if err := releaseDomain(txn, orgID, name); err != nil {
			return err
		}
		var err error
		stored, err = setJSON(txn, k, d, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := new(Domain)
	return out, json.Unmarshal(stored, out)
}

// RemoveDomain deletes the org's domain and frees it for other orgs if this
// org had verified it. ErrNotFound if the org has no such domain.
func (s *Store) RemoveDomain(orgID, name string) error {
	const op = "remove domain"
	if err := need(op, "org id", orgID, "domain name", name); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.update(op, func(txn Txn) error {
		k := key(pDom, orgID, name)
		if ok, err := exists(txn, k); err != nil {
			return err
		} else if !ok {
			return notFound(op, "domain", name)
		}
		if err := releaseDomain(txn, orgID, name); err != nil {
			return err
		}
		return del(txn, k)
	})
}

// OrgForDomain returns the ID of the org that verified the domain;
// ErrNotFound if no org has verified it (pending claims do not count).
func (s *Store) OrgForDomain(name string) (string, error) {
	const op = "org for domain"
	if err := need(op, "domain name", name); err != nil {
		return "", err
	}
	if err := s.enter(); err != nil {
		return "", err
	}
	defer s.leave()
	var org string
	err := s.viewSingle(func(txn Txn) error {
		return wrapNotFound(getJSON(txn, key(pVDom, name), &org), op, "verified domain", name)
	})
	if err != nil {
		return "", err
	}
	return org, nil
}
