package store

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"
)

// Sign-in attempts are kept for the IT admin who sets up or fixes the IdP:
// the newest MaxSignInAttempts per organization, none older than
// SignInAttemptTTL. Anyone can post to an organization's ACS, so the bound
// is by count, enforced on every write of a refusal, whatever arrives
// (admitted sign-ins, which need the IdP's signature, enforce it every
// signInPruneEvery).
const (
	MaxSignInAttempts = 200
	SignInAttemptTTL  = 30 * 24 * time.Hour

	// maxAttemptText caps every free-text field of an attempt.
	maxAttemptText = 512
	// RefAlphabet is the reference codes' alphabet: no 0/O or 1/I/L, so
	// a code read aloud or retyped from a screenshot comes out right.
	RefAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
	// RefLength is the length of a reference code: 31^8 is about 2^39.
	RefLength = 8
)

// SignInShape is what a SAML response looked like (see samlsp.Inspect):
// never the assertion, and of attribute values only how many group values
// there were. Every field is as the sender claims it.
type SignInShape struct {
	Issuer      string `json:"issuer,omitempty"`
	Destination string `json:"destination,omitempty"`
	StatusCode  string `json:"status_code,omitempty"`
	// Unsolicited: the Response answers no request (IdP-initiated).
	Unsolicited  bool   `json:"unsolicited,omitempty"`
	NameIDFormat string `json:"nameid_format,omitempty"`
	// Signed lists the signed parts: "response", "assertion".
	Signed    []string `json:"signed"`
	Encrypted bool     `json:"encrypted,omitempty"`
	// SignatureAlgorithms and DigestAlgorithms are the URIs used.
	SignatureAlgorithms []string `json:"signature_algorithms,omitempty"`
	DigestAlgorithms    []string `json:"digest_algorithms,omitempty"`
	// ClockDifference is the response's IssueInstant minus the gateway's
	// clock on arrival, in seconds: positive when the IdP's clock is ahead.
	ClockDifference *int64 `json:"clock_difference_seconds,omitempty"`
	// AttributeNames are the names of the assertion's attributes (none
	// while the assertion is encrypted and was not decrypted).
	AttributeNames []string `json:"attribute_names,omitempty"`
	GroupValues    int      `json:"group_values"`
}

// SignInAttempt is one SAML sign-in at an organization's ACS, admitted or
// refused.
type SignInAttempt struct {
	// Ref is the reference code the refusal page shows (assigned by
	// AddSignInAttempt).
	Ref   string    `json:"ref"`
	OrgID string    `json:"org_id"`
	Time  time.Time `json:"time"`
	// Outcome is "success" or "refused".
	Outcome string `json:"outcome"`
	// Test is set for an org admin's Test sign-in, which starts no session.
	Test bool `json:"test,omitempty"`
	// Reason is the troubleshooting table's code (samlsp.ReasonByCode); Problem
	// and Fix its words; Detail the precise reason, as logged.
	Reason  string `json:"reason,omitempty"`
	Problem string `json:"problem,omitempty"`
	Fix     string `json:"fix,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// Email is the subject's address, only once the response validated.
	Email    string       `json:"email,omitempty"`
	SourceIP string       `json:"source_ip,omitempty"`
	Shape    *SignInShape `json:"shape,omitempty"`
}

func signInKey(a *SignInAttempt) []byte {
	return key(pSignIn, a.OrgID, auditTimeSegment(a.Time), a.Ref)
}

// AddSignInAttempt records a. It assigns Ref and Time, caps the text
// fields, and drops the organization's attempts beyond the newest
// MaxSignInAttempts in the same transaction.
func (s *Store) AddSignInAttempt(a *SignInAttempt) error {
	const op = "add sign-in attempt"
	c, err := newSignInAttempt(op, a)
	if err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err = s.update(op, func(txn Txn) error {
		if err := putSignInAttempt(txn, op, c); err != nil {
			return err
		}
		return pruneSignInAttempts(txn, c.OrgID)
	})
	if err != nil {
		return err
	}
	*a = *c
	return nil
}

// newSignInAttempt checks a, assigns its Ref and Time and caps its text.
func newSignInAttempt(op string, a *SignInAttempt) (*SignInAttempt, error) {
	if a == nil {
		return nil, invalid(op, "nil sign-in attempt")
	}
	if err := need(op, "org", a.OrgID); err != nil {
		return nil, err
	}
	c := *a
	ref, err := newRef()
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	c.Ref, c.Time = ref, now()
	for _, f := range []*string{&c.Outcome, &c.Reason, &c.Problem, &c.Fix, &c.Detail, &c.Email, &c.SourceIP} {
		*f = clipTo(*f, maxAttemptText)
	}
	return &c, nil
}

func putSignInAttempt(txn Txn, op string, c *SignInAttempt) error {
	if err := requireOrg(txn, op, c.OrgID); err != nil {
		return err
	}
	_, err := setJSON(txn, signInKey(c), c, ttlSeconds(c.Time.Add(SignInAttemptTTL)))
	return err
}

// pruneSignInAttempts drops the organization's attempts beyond the newest
// MaxSignInAttempts.
func pruneSignInAttempts(txn Txn, orgID string) error {
	// Newest first, so everything past the cap is the oldest.
	keys := keysWithPrefix(txn, scanPrefix(pSignIn, orgID), nil, 0)
	for i := MaxSignInAttempts; i < len(keys); i++ {
		if err := del(txn, keys[i]); err != nil {
			return err
		}
	}
	return nil
}

// ListSignInAttempts returns the organization's recorded attempts, newest
// first; with ref set, only the one with that reference code (if any).
func (s *Store) ListSignInAttempts(orgID, ref string) ([]*SignInAttempt, error) {
	const op = "list sign-in attempts"
	if err := need(op, "org", orgID); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out := []*SignInAttempt{}
	cutoff := now().Add(-SignInAttemptTTL)
	err := s.view(func(txn Txn) error {
		return listJSON(txn, scanPrefix(pSignIn, orgID), 0, MaxSignInAttempts, func(b []byte) error {
			var a SignInAttempt
			if err := json.Unmarshal(b, &a); err != nil {
				return fmt.Errorf("store: %s: decode: %w", op, err)
			}
			if a.Time.Before(cutoff) || (ref != "" && a.Ref != ref) {
				return nil
			}
			out = append(out, &a)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func newRef() (string, error) {
	b := make([]byte, RefLength)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	for i, v := range b {
		// 256 % 31 = 8: the first few letters are 1/32 likelier; a
		// reference code is a lookup key, not a secret.
		b[i] = RefAlphabet[int(v)%len(RefAlphabet)]
	}
	return string(b), nil
}
