package caddymodule

import (
	"errors"
	"fmt"
	"time"

	"github.com/ssogate/ssogate/caddymodule/samlsp"
	"github.com/ssogate/ssogate/store"
)

// errIdentityMismatch: the email belongs to a user the IdP knows under a
// different stable ID — a recycled address, or an IdP confusing two people.
// Signing in would hand one person's account to another.
var errIdentityMismatch = errors.New("asserted objectidentifier differs from the one on file for this email")

// linkRefusal is a sign-in that matches no account on file safely; it is
// an errIdentityMismatch with its own reason.
type linkRefusal string

func (e linkRefusal) Error() string        { return string(e) }
func (e linkRefusal) Is(target error) bool { return target == errIdentityMismatch }

// errAmbiguousEmail: the address is on several users and the sign-in
// carries no stable ID that one of them has; picking one (the oldest, as
// UserByEmail would) could hand one person's account to another.
const errAmbiguousEmail = linkRefusal("several users have this email address and none has the asserted stable ID")

// errIDMissing: the user on file is linked to a stable IdP ID and the
// sign-in asserts none, so only the address would link it.
const errIDMissing = linkRefusal("the account on file is linked to a stable IdP ID and the sign-in asserts none")

// findUser finds the user a SAML sign-in is for, writing nothing: a
// sign-in the organization refuses must not leave a user behind. SCIM
// provisioning and earlier sign-ins link by the IdP's stable ID first,
// then by userName or email, so one person never becomes two users. It
// returns nil for someone not on file yet (saveUser creates them).
//
// Addresses compare by identity.Key (ASCII case only, domains as
// A-labels): an address that differs from a user's by a look-alike
// character is another person. The address alone links only when it
// is the userName of one user, or an address of exactly one user, and
// that user is not held to a different stable ID (see the README,
// "Linking sign-ins to users"); the caller has checked that its domain
// is verified for org.
func findUser(st *store.Store, org *store.Org, id *samlsp.Identity) (*store.User, error) {
	var u *store.User
	var err error
	if id.ObjectID != "" {
		u, err = st.UserByExternalID(org.ID, id.ObjectID)
	}
	if u == nil && (err == nil || errors.Is(err, store.ErrNotFound)) {
		u, err = st.UserByUserName(org.ID, id.Email)
		if errors.Is(err, store.ErrNotFound) {
			u, err = userByOnlyEmail(st, org.ID, id.Email)
		}
		// A provisioned user's externalId is whatever the IdP's SCIM
		// client chose (Entra ID sends mailNickname by default), not
		// necessarily the objectidentifier its SAML side asserts; SCIM
		// keeps such users' identities current, so only users from
		// sign-ins are held to their objectidentifier.
		if err == nil && u.Source != store.SourceSCIM && u.ExternalID != "" {
			if id.ObjectID == "" {
				return nil, errIDMissing
			}
			if u.ExternalID != id.ObjectID {
				return nil, errIdentityMismatch
			}
		}
	}
	if err == nil {
		return u, nil
	}
	if errors.Is(err, errIdentityMismatch) {
		return nil, err
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("finding user: %w", err)
	}
	// Someone the IdP's provisioning deleted must not come back through a
	// sign-in the IdP still signs. They get a stand-in that is never
	// stored, marked inactive, so the sign-in refuses them as a
	// deactivated user; provisioning them again lifts this.
	gone, err := st.Deprovisioned(org.ID, id.ObjectID, id.Email, id.Email)
	if err != nil {
		return nil, fmt.Errorf("checking deprovisioned users: %w", err)
	}
	if gone {
		return &store.User{OrgID: org.ID, UserName: id.Email, Active: false, Source: store.SourceSCIM}, nil
	}
	return nil, nil
}

// saveUser records an admitted SAML sign-in: it creates the user findUser
// did not find (u == nil, source saml) or refreshes the one it found.
func saveUser(st *store.Store, org *store.Org, u *store.User, id *samlsp.Identity) (*store.User, error) {
	now := time.Now()
	if u == nil {
		nu := &store.User{
			OrgID:       org.ID,
			UserName:    id.Email,
			ExternalID:  id.ObjectID,
			Emails:      []store.Email{{Value: id.Email, Type: "work", Primary: true}},
			DisplayName: id.DisplayName,
			GivenName:   id.GivenName,
			FamilyName:  id.FamilyName,
			Active:      true,
			Source:      store.SourceSAML,
			LastLogin:   now,
		}
		if err := st.CreateUser(nu); err != nil {
			return nil, fmt.Errorf("creating user: %w", err)
		}
		return nu, nil
	}
	u, err := st.UpdateUser(org.ID, u.ID, func(u *store.User) error {
		// A provisioned user's externalId belongs to the SCIM client.
		if u.ExternalID == "" && u.Source != store.SourceSCIM {
			u.ExternalID = id.ObjectID
		}
		// SCIM is the source of truth for the profile of users it
		// provisions; for the others the latest assertion is.
		if u.Source != store.SourceSCIM {
			if id.DisplayName != "" {
				u.DisplayName = id.DisplayName
			}
			if id.GivenName != "" {
				u.GivenName = id.GivenName
			}
			if id.FamilyName != "" {
				u.FamilyName = id.FamilyName
			}
		}
		u.LastLogin = now
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("updating user: %w", err)
	}
	return u, nil
}

// userByOnlyEmail is the one user of orgID with this address:
// ErrNotFound for none, errAmbiguousEmail for several.
func userByOnlyEmail(st *store.Store, orgID, email string) (*store.User, error) {
	ids, err := st.UserIDsByEmail(orgID, email)
	if err != nil {
		return nil, err
	}
	switch len(ids) {
	case 0:
		return nil, store.ErrNotFound
	case 1:
		return st.GetUser(orgID, ids[0])
	}
	return nil, errAmbiguousEmail
}
