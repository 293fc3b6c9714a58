package orgs

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ssogate/ssogate/caddymodule/local"
	"github.com/ssogate/ssogate/store"
)

// DefaultInviteTTL is how long a set-password link works unless the
// Service's InviteTTL says otherwise.
const DefaultInviteTTL = 72 * time.Hour

// Local accounts: the owner, invited users and the backup login (SPEC §2).
// Org admins reach these operations through the gateway's own routes, the
// operator through the admin API; both call the same methods.

// CreatedOrg is a new organization with the owner's set-password link,
// which is shown only in this response.
type CreatedOrg struct {
	*OrgView
	OwnerInviteURL     string    `json:"owner_invite_url"`
	OwnerInviteExpires time.Time `json:"owner_invite_expires"`
}

// SetPasswordLink is a one-time link that lets a local account choose its
// password. It is shown once; only its hash is stored.
type SetPasswordLink struct {
	UserID    string    `json:"user_id"`
	Email     string    `json:"email"`
	URL       string    `json:"set_password_url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// UserView is one user of an organization as the users page lists it.
type UserView struct {
	ID          string    `json:"id"`
	UserName    string    `json:"user_name"`
	Email       string    `json:"email,omitempty"`
	DisplayName string    `json:"display_name,omitempty"`
	Source      string    `json:"source"` // local | scim | saml
	Role        string    `json:"role"`   // admin | user
	Status      string    `json:"status"` // active | inactive | invited
	BackupLogin bool      `json:"backup_login,omitempty"`
	Created     time.Time `json:"created"`
	LastLogin   time.Time `json:"last_login,omitzero"`
	// InviteExpires is when the pending set-password link expires.
	InviteExpires time.Time `json:"invite_expires,omitzero"`
	// IdPLinked: SAML sign-ins stored the IdP's stable ID for this user,
	// which UnlinkUser forgets (never set for SCIM users, whose
	// externalId is the provisioning's).
	IdPLinked bool `json:"idp_linked,omitempty"`
}

// User statuses.
const (
	StatusActive   = "active"
	StatusInactive = "inactive"
	StatusInvited  = "invited"
)

// UserFilter selects users by role and status; empty fields match all.
type UserFilter struct {
	Role   string
	Status string
}

// BackupView is an organization's backup login and the accounts it could
// be moved to.
type BackupView struct {
	UserID    string    `json:"user_id,omitempty"`
	Email     string    `json:"email,omitempty"`
	LastLogin time.Time `json:"last_login,omitzero"`
	// Ready: the account exists, is active and has a password.
	Ready bool `json:"ready"`
	// Eligible lists the local accounts the designation may move to.
	Eligible []UserView `json:"eligible"`
}

func (s *Service) inviteTTL() time.Duration {
	if s.InviteTTL > 0 {
		return s.InviteTTL
	}
	return DefaultInviteTTL
}

// gatewayURL is {base_url}{prefix}, derived from the SP entity ID
// {base_url}{prefix}/saml/{org} as SCIMBaseURL does.
func (s *Service) gatewayURL(orgID string) (string, error) {
	if s.spURLs != nil {
		if p, ok := strings.CutSuffix(s.spURLs(orgID).EntityID, "/saml/"+url.PathEscape(orgID)); ok {
			return p, nil
		}
	}
	return "", errors.New("the gateway's URL is not known, so no link can be made")
}

// newLink makes a link token and its invitation record (not stored).
func (s *Service) newLink(orgID, purpose, actor string) (*store.Invitation, string, error) {
	base, err := s.gatewayURL(orgID)
	if err != nil {
		return nil, "", err
	}
	token, hash, err := local.NewLinkToken()
	if err != nil {
		return nil, "", err
	}
	inv := &store.Invitation{
		TokenHash: hash, OrgID: orgID, Purpose: purpose, CreatedBy: actor,
		ExpiresAt: time.Now().Add(s.inviteTTL()).UTC(),
	}
	return inv, base + "/invite/" + token, nil
}

// localAddress validates an address for a local account and returns its
// stored form. The address's domain must not be verified by another
// organization: an account there could pass for one of that
// organization's people upstream (SPEC §8).
func (s *Service) localAddress(field, orgID, raw string) (string, error) {
	email, err := normalizeEmail(field, raw)
	if err != nil {
		return "", err
	}
	email = local.NormalizeEmail(email)
	if d := local.EmailDomain(email); d != "" {
		owner, err := s.store.OrgForDomain(d)
		switch {
		case err == nil && owner != orgID:
			return "", conflictField(field, "the domain of %s is verified by another organization", email)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return "", fmt.Errorf("looking up domain: %w", err)
		}
	}
	return email, nil
}

// CreateOrg creates an inactive organization together with its owner: a
// local account (role admin) under ownerEmail, designated as the backup
// login, and a set-password link for it, returned once in the result.
func (s *Service) CreateOrg(actor, id, name, ownerEmail string) (*CreatedOrg, error) {
	if !orgIDPattern.MatchString(id) {
		return nil, invalid("id", "%q is not a valid organization ID: use 2 to 40 lower-case letters, digits and hyphens", id)
	}
	name, err := cleanText("name", name, maxNameLen)
	if err != nil {
		return nil, err
	}
	ownerEmail, err = s.localAddress("owner_email", id, ownerEmail)
	if err != nil {
		return nil, err
	}
	inv, link, err := s.newLink(id, store.InviteOwner, actor)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	o := &store.Org{ID: id, Name: name, OwnerEmail: ownerEmail, Created: now, Updated: now, State: store.OrgInactive}
	owner := newLocalUser(ownerEmail, store.RoleAdmin, "")
	if err := s.store.CreateOrgWithOwner(o, owner, inv); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, conflictField("id", "organization %q already exists", id)
		}
		if errors.Is(err, store.ErrConflict) {
			return nil, conflictField("id", "organization %q is still being deleted; try again shortly", id)
		}
		return nil, orgErr(id, err, "creating")
	}
	s.audit(id, actor, "org.create", OutcomeSuccess, map[string]string{"name": name, "owner_email": ownerEmail})
	s.audit(id, actor, "local.invite", OutcomeSuccess, map[string]string{"user": ownerEmail, "role": store.RoleAdmin, "purpose": store.InviteOwner})
	s.audit(id, actor, "backup.set", OutcomeSuccess, map[string]string{"to": ownerEmail, "reason": "owner by default"})
	v, err := s.view(o)
	if err != nil {
		return nil, err
	}
	return &CreatedOrg{OrgView: v, OwnerInviteURL: link, OwnerInviteExpires: inv.ExpiresAt}, nil
}

func newLocalUser(email, role, displayName string) *store.User {
	return &store.User{
		UserName:    email,
		Emails:      []store.Email{{Value: email, Type: "work", Primary: true}},
		DisplayName: displayName,
		Active:      true,
		Source:      store.SourceLocal,
		Role:        role,
	}
}

// InviteLocalUser adds a local account to the organization and returns
// its set-password link. role is "admin" or "user" (default "user").
func (s *Service) InviteLocalUser(actor, orgID, email, role, displayName string) (*SetPasswordLink, error) {
	if _, err := s.getOrg(orgID); err != nil {
		return nil, err
	}
	email, err := s.localAddress("email", orgID, email)
	if err != nil {
		return nil, err
	}
	switch role {
	case "":
		role = store.RoleUser
	case store.RoleAdmin, store.RoleUser:
	default:
		return nil, invalid("role", "must be %q or %q", store.RoleAdmin, store.RoleUser)
	}
	if displayName != "" {
		if displayName, err = cleanText("display_name", displayName, maxNameLen); err != nil {
			return nil, err
		}
	}
	inv, link, err := s.newLink(orgID, store.InviteUser, actor)
	if err != nil {
		return nil, err
	}
	u := newLocalUser(email, role, displayName)
	u.OrgID = orgID
	if err := s.store.CreateLocalUser(u, inv); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, conflictField("email", "the organization already has a user %s", email)
		}
		return nil, orgErr(orgID, err, "inviting a user to")
	}
	s.audit(orgID, actor, "local.invite", OutcomeSuccess, map[string]string{"user": email, "user_id": u.ID, "role": role, "purpose": store.InviteUser})
	return &SetPasswordLink{UserID: u.ID, Email: email, URL: link, ExpiresAt: inv.ExpiresAt}, nil
}

// ReinviteLocalUser issues a new set-password link, revoking the earlier
// one, for a local account that has not set its password yet (the first
// link expired or was lost). Accounts with a password are refused: only
// the operator resets a password, and only the backup login's
// (ResetBackup); others are removed and invited again.
func (s *Service) ReinviteLocalUser(actor, orgID, userID string) (*SetPasswordLink, error) {
	u, err := s.localUser(orgID, userID)
	if err != nil {
		return nil, err
	}
	if u.PasswordHash != "" {
		return nil, conflict("%s has already set a password", u.UserName)
	}
	return s.issueLink(actor, orgID, u, store.InviteUser)
}

func (s *Service) issueLink(actor, orgID string, u *store.User, purpose string) (*SetPasswordLink, error) {
	inv, link, err := s.newLink(orgID, purpose, actor)
	if err != nil {
		return nil, err
	}
	inv.UserID = u.ID
	if err := s.store.IssueInvitation(inv); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("user %q not found", u.ID)
		}
		return nil, orgErr(orgID, err, "issuing a link in")
	}
	s.audit(orgID, actor, "local.invite", OutcomeSuccess, map[string]string{"user": u.UserName, "user_id": u.ID, "role": u.Role, "purpose": purpose})
	return &SetPasswordLink{UserID: u.ID, Email: u.UserName, URL: link, ExpiresAt: inv.ExpiresAt}, nil
}

// localUser loads a local account of the organization by ID or, when ref
// contains '@', by address.
func (s *Service) localUser(orgID, ref string) (*store.User, error) {
	u, err := s.userByRef(orgID, ref, false)
	if err != nil {
		return nil, err
	}
	if u == nil || u.Source != store.SourceLocal {
		return nil, notFound("organization %q has no local account %q", orgID, ref)
	}
	return u, nil
}

// userByRef loads a user of the organization by ID or, when ref contains
// '@', by userName (and, with anyAddress, then by any of its addresses).
// A user that is not there is nil, without an error: callers name what
// they looked for.
func (s *Service) userByRef(orgID, ref string, anyAddress bool) (*store.User, error) {
	if _, err := s.getOrg(orgID); err != nil {
		return nil, err
	}
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, invalid("user", "is required (a user ID or email address)")
	}
	var u *store.User
	var err error
	if strings.Contains(ref, "@") {
		email := local.NormalizeEmail(ref)
		u, err = s.store.UserByUserName(orgID, email)
		if anyAddress && errors.Is(err, store.ErrNotFound) {
			u, err = s.store.UserByEmail(orgID, email)
		}
	} else {
		u, err = s.store.GetUser(orgID, ref)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, orgErr(orgID, err, "reading a user of")
	}
	return u, nil
}

// RemoveLocalUser deletes a local account with its sessions and links.
// The backup login cannot be removed until another account is designated.
func (s *Service) RemoveLocalUser(actor, orgID, ref string) error {
	u, err := s.localUser(orgID, ref)
	if err != nil {
		return err
	}
	if _, err := s.store.DeleteLocalUser(orgID, u.ID); err != nil {
		switch {
		case errors.Is(err, store.ErrConflict):
			s.audit(orgID, actor, "local.remove", OutcomeDenied, map[string]string{"user": u.UserName, "reason": "backup login"})
			return conflict("%s is the backup login; designate another account first", u.UserName)
		case errors.Is(err, store.ErrNotFound):
			return notFound("organization %q has no local account %q", orgID, ref)
		}
		return orgErr(orgID, err, "removing a user of")
	}
	s.audit(orgID, actor, "local.remove", OutcomeSuccess, map[string]string{"user": u.UserName, "user_id": u.ID})
	return nil
}

// errNotEligible carries a refusal out of the store transaction.
type errNotEligible struct{ msg string }

func (e errNotEligible) Error() string { return e.msg }

// eligibleBackup is the rule of SPEC §2 and §6 step 7: a local account of
// the organization, active, with a password, that has signed in at least
// once (so the password is known to work).
func eligibleBackup(u *store.User) error {
	switch {
	case u.Source != store.SourceLocal:
		return errNotEligible{u.UserName + " is not a local account"}
	case !u.Active:
		return errNotEligible{u.UserName + " is deactivated"}
	case u.PasswordHash == "":
		return errNotEligible{u.UserName + " has not set a password yet"}
	case u.LastLogin.IsZero():
		return errNotEligible{u.UserName + " has never signed in; only an account that has signed in at least once can be the backup login"}
	}
	return nil
}

// SetBackup designates the organization's backup login: ref is a user ID
// or an address of one of its local accounts, which must be eligible.
func (s *Service) SetBackup(actor, orgID, ref string) (*BackupView, error) {
	u, err := s.localUser(orgID, ref)
	if err != nil {
		return nil, err
	}
	o, previous, err := s.store.SetBackupLogin(orgID, u.ID, eligibleBackup)
	var ne errNotEligible
	switch {
	case errors.As(err, &ne):
		s.audit(orgID, actor, "backup.set", OutcomeDenied, map[string]string{"to": u.UserName, "reason": ne.msg})
		return nil, &Error{Status: http.StatusConflict, Field: "user", Message: ne.msg}
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound("organization %q has no local account %q", orgID, ref)
	case err != nil:
		return nil, orgErr(orgID, err, "designating the backup login of")
	}
	details := map[string]string{"to": u.UserName, "to_id": u.ID}
	if previous != "" {
		details["from_id"] = previous
		if p, err := s.store.GetUser(orgID, previous); err == nil {
			details["from"] = p.UserName
		}
	}
	s.audit(orgID, actor, "backup.set", OutcomeSuccess, details)
	return s.backupView(o)
}

// Backup shows the organization's backup login and the eligible accounts.
func (s *Service) Backup(orgID string) (*BackupView, error) {
	o, err := s.getOrg(orgID)
	if err != nil {
		return nil, err
	}
	return s.backupView(o)
}

func (s *Service) backupView(o *store.Org) (*BackupView, error) {
	v := &BackupView{UserID: o.BackupLogin, Eligible: []UserView{}}
	if o.BackupLogin != "" {
		if u, err := s.store.GetUser(o.ID, o.BackupLogin); err == nil {
			v.Email, v.LastLogin = u.UserName, u.LastLogin
			v.Ready = u.Source == store.SourceLocal && u.Active && u.PasswordHash != ""
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, orgErr(o.ID, err, "reading the backup login of")
		}
	}
	users, err := s.ListUsers(o.ID, UserFilter{Status: StatusActive})
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if u.Source == store.SourceLocal && !u.LastLogin.IsZero() && !u.BackupLogin {
			v.Eligible = append(v.Eligible, u)
		}
	}
	return v, nil
}

// ResetBackup issues a new set-password link for the backup login,
// revoking earlier links; the current password keeps working until the
// link is used, and using it ends the account's sessions. Browsers
// trusted for the account (local.Devices) lose that trust at once: the
// link changes the account's credential version. If the backup
// account is gone (deleted through SCIM, say), the owner's local account
// is designated again, and re-created if needed, so an operator can
// always restore a way in.
func (s *Service) ResetBackup(actor, orgID string) (*SetPasswordLink, error) {
	o, err := s.getOrg(orgID)
	if err != nil {
		return nil, err
	}
	u, err := s.store.GetUser(orgID, o.BackupLogin)
	if o.BackupLogin == "" || errors.Is(err, store.ErrNotFound) || (err == nil && u.Source != store.SourceLocal) {
		return s.restoreOwnerAsBackup(actor, o)
	}
	if err != nil {
		return nil, orgErr(orgID, err, "reading the backup login of")
	}
	link, err := s.issueLink(actor, orgID, u, store.InviteReset)
	if err != nil {
		return nil, err
	}
	s.audit(orgID, actor, "backup.reset", OutcomeSuccess, map[string]string{"user": u.UserName, "user_id": u.ID})
	return link, nil
}

func (s *Service) restoreOwnerAsBackup(actor string, o *store.Org) (*SetPasswordLink, error) {
	if o.OwnerEmail == "" {
		return nil, conflict("organization %q has no backup login and no owner address to restore it from", o.ID)
	}
	owner, err := s.store.UserByUserName(o.ID, o.OwnerEmail)
	var link *SetPasswordLink
	switch {
	case err == nil && owner.Source == store.SourceLocal:
		if link, err = s.issueLink(actor, o.ID, owner, store.InviteReset); err != nil {
			return nil, err
		}
	case err == nil:
		return nil, conflict("the owner address %s belongs to a %s user, not a local account; invite a local account and designate it", o.OwnerEmail, owner.Source)
	case errors.Is(err, store.ErrNotFound):
		inv, url, err := s.newLink(o.ID, store.InviteReset, actor)
		if err != nil {
			return nil, err
		}
		owner = newLocalUser(o.OwnerEmail, store.RoleAdmin, "")
		owner.OrgID = o.ID
		if err := s.store.CreateLocalUser(owner, inv); err != nil {
			return nil, orgErr(o.ID, err, "re-creating the owner of")
		}
		link = &SetPasswordLink{UserID: owner.ID, Email: owner.UserName, URL: url, ExpiresAt: inv.ExpiresAt}
		s.audit(o.ID, actor, "local.invite", OutcomeSuccess, map[string]string{"user": owner.UserName, "user_id": owner.ID, "role": store.RoleAdmin, "purpose": store.InviteReset})
	default:
		return nil, orgErr(o.ID, err, "reading the owner of")
	}
	// The operator's recovery: the owner is the default backup login, so
	// the "signed in once" rule that guards an org admin's choice does
	// not apply here.
	if _, _, err := s.store.SetBackupLogin(o.ID, owner.ID, func(u *store.User) error {
		if u.Source != store.SourceLocal {
			return errNotEligible{u.UserName + " is not a local account"}
		}
		return nil
	}); err != nil {
		return nil, orgErr(o.ID, err, "designating the backup login of")
	}
	s.audit(o.ID, actor, "backup.set", OutcomeSuccess, map[string]string{"to": owner.UserName, "to_id": owner.ID, "reason": "backup login restored to the owner"})
	s.audit(o.ID, actor, "backup.reset", OutcomeSuccess, map[string]string{"user": owner.UserName, "user_id": owner.ID})
	return link, nil
}

// listBatch is how many user records ListUsers reads per store call.
const listBatch = 1000

// ListUsers lists every user of the organization (local, SCIM-provisioned,
// SAML-created) with role, status and source, filtered. Role: a local
// account's own; for others, membership of the SCIM-provisioned admin
// group when SCIM provides one, else admin for users that SAML created
// (only members of the mapped admin group are let in) and user for the
// rest.
func (s *Service) ListUsers(orgID string, f UserFilter) ([]UserView, error) {
	switch f.Role {
	case "", store.RoleAdmin, store.RoleUser:
	default:
		return nil, invalid("role", "must be %q or %q", store.RoleAdmin, store.RoleUser)
	}
	switch f.Status {
	case "", StatusActive, StatusInactive, StatusInvited:
	default:
		return nil, invalid("status", "must be %q, %q or %q", StatusActive, StatusInactive, StatusInvited)
	}
	o, err := s.getOrg(orgID)
	if err != nil {
		return nil, err
	}
	admins, haveGroup, err := s.adminGroupMembers(o)
	if err != nil {
		return nil, err
	}
	pending, err := s.store.PendingInvitations(orgID)
	if err != nil {
		return nil, orgErr(orgID, err, "listing invitations of")
	}
	out := []UserView{}
	for offset := 0; ; offset += listBatch {
		batch, _, err := s.store.ListUsers(orgID, offset, listBatch)
		if err != nil {
			return nil, orgErr(orgID, err, "listing users of")
		}
		for _, u := range batch {
			v := userView(o, u, admins, haveGroup, pending)
			if (f.Role == "" || v.Role == f.Role) && (f.Status == "" || v.Status == f.Status) {
				out = append(out, v)
			}
		}
		if len(batch) < listBatch {
			break
		}
	}
	slices.SortStableFunc(out, func(a, b UserView) int { return strings.Compare(a.UserName, b.UserName) })
	return out, nil
}

// adminGroupMembers returns the members of the SCIM-provisioned admin
// group, if SCIM provisioned it.
func (s *Service) adminGroupMembers(o *store.Org) (map[string]bool, bool, error) {
	m := o.AdminGroup
	var g *store.Group
	var err error = store.ErrNotFound
	if m.ID != "" {
		g, err = s.store.GroupByExternalID(o.ID, m.ID)
	}
	if errors.Is(err, store.ErrNotFound) && m.Name != "" {
		g, err = s.store.GroupByDisplayName(o.ID, m.Name)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if errors.Is(err, store.ErrAmbiguous) {
		// Several provisioned groups have the mapped name: nobody is
		// admitted by it (see authorized in package caddymodule).
		return map[string]bool{}, true, nil
	}
	if err != nil {
		return nil, false, orgErr(o.ID, err, "reading the admin group of")
	}
	set := make(map[string]bool, len(g.Members))
	for _, id := range g.Members {
		set[id] = true
	}
	return set, true, nil
}

func userView(o *store.Org, u *store.User, admins map[string]bool, haveGroup bool, pending map[string]time.Time) UserView {
	v := UserView{
		ID: u.ID, UserName: u.UserName, DisplayName: u.DisplayName, Source: u.Source,
		Created: u.Created, LastLogin: u.LastLogin, BackupLogin: u.ID == o.BackupLogin,
		InviteExpires: pending[u.ID],
		IdPLinked:     u.ExternalID != "" && u.Source != store.SourceSCIM,
	}
	for _, e := range u.Emails {
		if v.Email == "" || e.Primary {
			v.Email = e.Value
		}
	}
	switch {
	case u.Source == store.SourceLocal:
		v.Role = u.Role
	case haveGroup:
		v.Role = store.RoleUser
		if admins[u.ID] {
			v.Role = store.RoleAdmin
		}
	case u.Source == store.SourceSAML:
		v.Role = store.RoleAdmin
	default:
		v.Role = store.RoleUser
	}
	if v.Role == "" {
		v.Role = store.RoleUser
	}
	switch {
	case !u.Active:
		v.Status = StatusInactive
	case u.Source == store.SourceLocal && u.PasswordHash == "":
		v.Status = StatusInvited
	default:
		v.Status = StatusActive
	}
	return v
}

// Admin API handlers of local accounts (routes in AdminHandler).

type (
	inviteRequest struct {
		Email       string `json:"email"`
		Role        string `json:"role"`
		DisplayName string `json:"display_name"`
	}
	backupRequest struct {
		User string `json:"user"` // user ID or email address
	}
)

func (a *adminAPI) listUsers(w http.ResponseWriter, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	users, err := a.s.ListUsers(a.org(r), UserFilter{Role: q.Get("role"), Status: q.Get("status")})
	return http.StatusOK, users, err
}

func (a *adminAPI) inviteLocalUser(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req inviteRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return 0, nil, err
	}
	link, err := a.s.InviteLocalUser(a.actor(r), a.org(r), req.Email, req.Role, req.DisplayName)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, link, nil
}

func (a *adminAPI) removeLocalUser(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return http.StatusNoContent, nil, a.s.RemoveLocalUser(a.actor(r), a.org(r), r.PathValue("user"))
}

func (a *adminAPI) reinviteLocalUser(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := decodeJSON(w, r, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	link, err := a.s.ReinviteLocalUser(a.actor(r), a.org(r), r.PathValue("user"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, link, nil
}

func (a *adminAPI) showBackup(w http.ResponseWriter, r *http.Request) (int, any, error) {
	v, err := a.s.Backup(a.org(r))
	return http.StatusOK, v, err
}

func (a *adminAPI) setBackup(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req backupRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return 0, nil, err
	}
	v, err := a.s.SetBackup(a.actor(r), a.org(r), req.User)
	return http.StatusOK, v, err
}

func (a *adminAPI) resetBackup(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := decodeJSON(w, r, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	link, err := a.s.ResetBackup(a.actor(r), a.org(r))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, link, nil
}
