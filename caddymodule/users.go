package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ssogate/ssogate/caddymodule/samlsp"
	"github.com/ssogate/ssogate/caddymodule/scim"
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
// returns nil for someone not on file yet (userWrite creates them).
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

// Caps on the groups a sign-in asserts, which every session record
// keeps and every request carries to the upstream (X-SSO-Groups). Entra
// ID sends at most 150 (beyond, a groups.link) and Okta what its group
// filter matches; a longer list is better narrowed by that filter. A
// name may be as long as an admin group's name (256 characters of up to
// 4 bytes); all names together fit an upstream's header limits.
const (
	maxAssertedGroups          = 1000
	maxAssertedGroupBytes      = 1024
	maxAssertedGroupTotalBytes = 64 << 10
)

// limitRefusal is a sign-in refused by the organization's limits (the
// `sso` app's scim_limits, which hold for users of every source): reason
// goes to the log and audit trail, text to the user's page.
type limitRefusal struct {
	status       int
	reason, text string
}

func (e *limitRefusal) Error() string { return e.reason }

// orgLimits are the per-organization limits of the `sso` app.
func (a *App) orgLimits() scim.Limits {
	var l scim.Limits
	if a.SCIMLimits != nil {
		l = *a.SCIMLimits
	}
	return l.WithDefaults()
}

// checkAsserted holds what the IdP asserts to the limits SCIM input is
// held to: a tenant's IdP must not store through sign-ins what its SCIM
// client could not. It reads nothing and writes nothing.
func checkAsserted(id *samlsp.Identity, l scim.Limits) *limitRefusal {
	tooLong := func(what string, n int) *limitRefusal {
		return &limitRefusal{status: http.StatusBadRequest,
			reason: fmt.Sprintf("asserted %s of %d bytes, more than %d", what, n, l.MaxStringLength),
			text:   fmt.Sprintf("The response from your identity provider has a %s of %d bytes; at most %d are accepted.", what, n, l.MaxStringLength)}
	}
	for _, f := range []struct{ what, v string }{
		{"NameID", id.NameID}, {"stable user ID", id.ObjectID}, {"display name", id.DisplayName},
		{"given name", id.GivenName}, {"family name", id.FamilyName},
	} {
		if len(f.v) > l.MaxStringLength {
			return tooLong(f.what, len(f.v))
		}
	}
	if n := len(id.Groups); n > maxAssertedGroups {
		return &limitRefusal{status: http.StatusBadRequest,
			reason: fmt.Sprintf("asserted %d groups, more than %d", n, maxAssertedGroups),
			text:   fmt.Sprintf("The response from your identity provider lists %d groups; at most %d are accepted.", n, maxAssertedGroups)}
	}
	total := 0
	for _, g := range id.Groups {
		if len(g) > maxAssertedGroupBytes {
			return &limitRefusal{status: http.StatusBadRequest,
				reason: fmt.Sprintf("asserted group name of %d bytes, more than %d", len(g), maxAssertedGroupBytes),
				text:   fmt.Sprintf("The response from your identity provider has a group name of %d bytes; at most %d are accepted.", len(g), maxAssertedGroupBytes)}
		}
		total += len(g)
	}
	if total > maxAssertedGroupTotalBytes {
		return &limitRefusal{status: http.StatusBadRequest,
			reason: fmt.Sprintf("asserted group names of %d bytes in all, more than %d", total, maxAssertedGroupTotalBytes),
			text:   fmt.Sprintf("The response from your identity provider lists groups whose names take %d bytes; at most %d are accepted.", total, maxAssertedGroupTotalBytes)}
	}
	return nil
}

// errStorageFull refuses a sign-in whose new user the organization's
// max_stored_bytes has no room for.
func errStorageFull(l scim.Limits) *limitRefusal {
	return &limitRefusal{status: http.StatusForbidden,
		reason: fmt.Sprintf("organization at its storage limit (max_stored_bytes %d)", l.MaxStoredBytes),
		text:   "Your organization has used all the storage this gateway keeps for its accounts, so no new account can be created."}
}

// errUserLimit refuses a sign-in whose new user would take the
// organization past max_users.
func errUserLimit(l scim.Limits) *limitRefusal {
	return &limitRefusal{status: http.StatusForbidden,
		reason: fmt.Sprintf("organization at its user limit (max_users %d)", l.MaxUsers),
		text:   fmt.Sprintf("Your organization has reached the number of accounts this gateway keeps for it (%d), so no new account can be created.", l.MaxUsers)}
}

// planSave decides, before anything is written, whether the writes of an
// admitted sign-in fit the organization's limits: a new user must fit
// max_users and max_stored_bytes, or the sign-in is refused (a
// limitRefusal) with nothing written. An existing user always signs in;
// refresh says whether the profile it asserts fits (a user stuck at the
// limit keeps the profile on file).
//
// The checks read the totals committed just before, so that a refusal
// writes nothing; userWrite's write carries both caps to the store as
// well, which holds max_users exactly against sign-ins in flight at the
// same moment, and max_stored_bytes as SCIM writes do (see
// store.MaxStoredBytes).
func planSave(st *store.Store, org *store.Org, u *store.User, id *samlsp.Identity, l scim.Limits) (refresh bool, err error) {
	if u != nil && u.Source == store.SourceSCIM {
		return false, nil // SCIM owns its users' profiles; nothing grows
	}
	if u == nil {
		n, err := st.CountUsers(org.ID)
		if err != nil {
			return false, fmt.Errorf("counting users: %w", err)
		}
		if n >= l.MaxUsers {
			return false, errUserLimit(l)
		}
		size, err := newUserSize(newSAMLUser(org, id))
		if err != nil {
			return false, err
		}
		over, err := overStorage(st, org, size, l)
		if err != nil {
			return false, err
		}
		if over {
			return false, errStorageFull(l)
		}
		return true, nil
	}
	var grow int64
	for _, f := range [][2]string{{u.DisplayName, id.DisplayName}, {u.GivenName, id.GivenName}, {u.FamilyName, id.FamilyName}} {
		if f[1] != "" {
			grow += int64(len(f[1]) - len(f[0]))
		}
	}
	if grow <= 0 {
		return true, nil
	}
	over, err := overStorage(st, org, grow, l)
	return !over, err
}

// overStorage says whether adding grow bytes takes org past
// max_stored_bytes.
func overStorage(st *store.Store, org *store.Org, grow int64, l scim.Limits) (bool, error) {
	stored, err := st.StoredBytes(org.ID)
	if err != nil {
		return false, fmt.Errorf("reading stored bytes: %w", err)
	}
	return stored+grow > l.MaxStoredBytes, nil
}

// newUserSize is at least what the store charges for creating u: its
// record (as JSON, with timestamps) and its index keys, each key's
// segments escaped (at most 3 bytes each) plus its value.
func newUserSize(u *store.User) (int64, error) {
	c := *u
	c.ID = "00000000-0000-0000-0000-000000000000"
	c.Created, c.Updated = c.LastLogin, c.LastLogin
	raw, err := json.Marshal(&c)
	if err != nil {
		return 0, fmt.Errorf("sizing user: %w", err)
	}
	keys := 3*(3*len(u.UserName)+len(u.ExternalID)) + 4*(3*len(u.OrgID)+128)
	return int64(len(raw) + keys), nil
}

// newSAMLUser is the user a first sign-in creates.
func newSAMLUser(org *store.Org, id *samlsp.Identity) *store.User {
	return &store.User{
		OrgID:       org.ID,
		UserName:    id.Email,
		ExternalID:  id.ObjectID,
		Emails:      []store.Email{{Value: id.Email, Type: "work", Primary: true}},
		DisplayName: id.DisplayName,
		GivenName:   id.GivenName,
		FamilyName:  id.FamilyName,
		Active:      true,
		Source:      store.SourceSAML,
		LastLogin:   time.Now(),
	}
}

// userWrite sets the user part of an admitted SAML sign-in's write: the
// user findUser did not find (u == nil) is created, source saml, or the
// one it found refreshed; refresh and l come from planSave. The creation
// is held to max_users and max_stored_bytes by the store too
// (store.ErrUserLimit, store.ErrQuota, for sign-ins that raced past
// planSave). An update adds at most the stable
// ID of a user that had none and a timestamp, both bounded per user, so
// it always goes through: a user on file is never locked out by the limit.
func userWrite(si *store.SignIn, org *store.Org, u *store.User, id *samlsp.Identity, l scim.Limits, refresh bool) {
	if u == nil {
		si.NewUser = newSAMLUser(org, id)
		si.UserOpts = []store.WriteOption{store.MaxStoredBytes(l.MaxStoredBytes), store.MaxUsers(l.MaxUsers)}
		return
	}
	now := time.Now()
	si.UserID = u.ID
	// Runs again if the store retries the transaction, on the record as
	// it is then.
	si.UpdateUser = func(u *store.User) error {
		// A provisioned user's externalId belongs to the SCIM client.
		if u.ExternalID == "" && u.Source != store.SourceSCIM {
			u.ExternalID = id.ObjectID
		}
		// SCIM is the source of truth for the profile of users it
		// provisions; for the others the latest assertion is.
		if u.Source != store.SourceSCIM && refresh {
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
	}
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
