package caddymodule

import (
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/store"
)

// authenticate loads the request's session and re-checks, on every
// request, everything that may have changed since sign-in: the org is
// still active, the user still exists and is active, and they are still in
// the admin group. A session that fails is deleted, so the next request
// does not pay for the checks again.
func (g *Gateway) authenticate(st *gatewayState, r *http.Request) (identity, bool) {
	sess, err := st.sessions.Load(r)
	if err != nil {
		return identity{}, false
	}
	reason, id := g.recheck(st.store, sess)
	if reason != "" {
		g.logger.Info("session ended by re-check",
			zap.String("org", sess.OrgID), zap.String("user_id", sess.UserID), zap.String("reason", reason))
		_ = st.store.DeleteSession(sess.ID)
		return identity{}, false
	}
	return id, true
}

func (g *Gateway) recheck(st *store.Store, sess *store.Session) (string, identity) {
	org, err := st.GetOrg(sess.OrgID)
	if err != nil {
		return "organization gone", identity{}
	}
	user, err := st.GetUser(sess.OrgID, sess.UserID)
	if err != nil {
		return "user gone", identity{}
	}
	if !user.Active {
		return "user deactivated", identity{}
	}
	if reason := recheckLocal(st, org, user, sess); reason != "" {
		return reason, identity{}
	}
	if sess.AuthMethod == authSAML {
		if org.State != store.OrgActive {
			return "organization's SSO deactivated", identity{}
		}
		ok, err := authorized(st, org, user, sess.Groups)
		if err != nil || !ok {
			return "not in the admin group", identity{}
		}
	}
	return "", identity{
		UserID:     user.ID,
		User:       user.UserName,
		Email:      primaryEmail(user),
		Name:       user.DisplayName,
		Groups:     sess.Groups,
		Org:        org.ID,
		AuthMethod: reportedMethod(org, sess),
	}
}

// Authentication methods, as the X-SSO-Auth-Method header reports them.
const (
	authSAML = "saml"
)

// errOverage marks a refusal for want of group information: Entra ID sent
// a groups.link claim and SCIM has not provisioned the admin group.
var errOverage = errors.New("group overage without SCIM membership")

// authorized decides whether user may sign in to org (SPEC §3.5). When SCIM
// has provisioned the org's admin group, its membership is the truth, so
// removing someone from the group in the IdP ends their access even while
// the IdP would still assert the group. Otherwise the groups asserted at
// sign-in decide, matched by the group's IdP ID or, case-insensitively,
// its name.
// user is nil for someone signing in for the first time.
func authorized(st *store.Store, org *store.Org, user *store.User, asserted []string) (bool, error) {
	m := org.AdminGroup
	if m.ID == "" && m.Name == "" {
		return false, nil
	}
	if gid, err := scimAdminGroupID(st, org); err == nil {
		if user == nil || user.ID == "" {
			return false, nil // not provisioned, so not a member
		}
		return st.IsMember(org.ID, gid, user.ID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	for _, a := range asserted {
		if (m.ID != "" && a == m.ID) || (m.Name != "" && strings.EqualFold(a, m.Name)) {
			return true, nil
		}
	}
	return false, nil
}

// scimAdminGroupID finds the provisioned group that the mapping names: by
// the IdP's group ID (Entra ID pushes it as externalId), else by name (Okta
// pushes groups without one). Only the indexes are read, not the group
// record with its member list, since this runs on every request.
func scimAdminGroupID(st *store.Store, org *store.Org) (string, error) {
	m := org.AdminGroup
	if m.ID != "" {
		if id, err := st.GroupIDByExternalID(org.ID, m.ID); err == nil || !errors.Is(err, store.ErrNotFound) {
			return id, err
		}
	}
	if m.Name != "" {
		return st.GroupIDByDisplayName(org.ID, m.Name)
	}
	return "", store.ErrNotFound
}

func primaryEmail(u *store.User) string {
	for _, e := range u.Emails {
		if e.Primary {
			return e.Value
		}
	}
	if len(u.Emails) > 0 {
		return u.Emails[0].Value
	}
	if strings.Contains(u.UserName, "@") {
		return u.UserName
	}
	return ""
}
