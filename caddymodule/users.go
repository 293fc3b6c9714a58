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

// findUser finds the user a SAML sign-in is for, writing nothing: a
// sign-in the organization refuses must not leave a user behind. SCIM
// provisioning and earlier sign-ins link by the IdP's stable ID first,
// then by userName or email, so one person never becomes two users. It
// returns nil for someone not on file yet (saveUser creates them).
func findUser(st *store.Store, org *store.Org, id *samlsp.Identity) (*store.User, error) {
	var u *store.User
	var err error
	if id.ObjectID != "" {
		u, err = st.UserByExternalID(org.ID, id.ObjectID)
	}
	if u == nil && (err == nil || errors.Is(err, store.ErrNotFound)) {
		u, err = st.UserByUserName(org.ID, id.Email)
		if errors.Is(err, store.ErrNotFound) {
			u, err = st.UserByEmail(org.ID, id.Email)
		}
		// A provisioned user's externalId is whatever the IdP's SCIM
		// client chose (Entra ID sends mailNickname by default), not
		// necessarily the objectidentifier its SAML side asserts; SCIM
		// keeps such users' identities current, so only users from
		// sign-ins are held to their objectidentifier.
		if err == nil && u.Source != store.SourceSCIM && u.ExternalID != "" && id.ObjectID != "" && u.ExternalID != id.ObjectID {
			return nil, errIdentityMismatch
		}
	}
	if err == nil {
		return u, nil
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
