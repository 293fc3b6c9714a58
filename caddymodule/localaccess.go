package caddymodule

import (
	"errors"
	"fmt"

	"github.com/ssogate/ssogate/caddymodule/local"
	"github.com/ssogate/ssogate/store"
)

// recheckLocal applies, on every request, the rules that keep a password
// session valid (SPEC §3.7, §3.8); recheck has already checked that the
// org and the user exist and the user is active. It returns why the
// session must end, or "", or an error when the store cannot answer.
//
//   - backup sessions last while the user is the org's backup login;
//   - password sessions last while the org's SSO is inactive, except the
//     backup login's: activation ends the others on their next request;
//   - the user is still a local account with a password;
//   - the account's domain has not been verified by another org since.
//
// Sessions of any other method than saml, backup and password end.
func recheckLocal(st *store.Store, org *store.Org, user *store.User, sess *store.Session) (string, error) {
	switch sess.AuthMethod {
	case authSAML:
		return "", nil
	case local.MethodBackup, local.MethodPassword:
	default:
		return "unknown authentication method", nil
	}
	if user.Source != store.SourceLocal || user.PasswordHash == "" {
		return "no longer a local account with a password", nil
	}
	isBackup := user.ID == org.BackupLogin
	switch {
	case sess.AuthMethod == local.MethodBackup && !isBackup:
		return "no longer the backup login", nil
	case sess.AuthMethod == local.MethodPassword && org.State == store.OrgActive && !isBackup:
		return "organization's SSO is active; password sign-in is for the backup login only", nil
	}
	if d := local.EmailDomain(local.NormalizeEmail(user.UserName)); d != "" {
		owner, err := st.OrgForDomain(d)
		switch {
		case err == nil && owner != org.ID:
			return "address's domain verified by another organization", nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return "", fmt.Errorf("re-check: domain look-up: %w", err)
		}
	}
	return "", nil
}

// reportedMethod is the X-SSO-Auth-Method of a session: a password
// session of the backup login that outlived its org's activation is a
// backup session from then on.
func reportedMethod(org *store.Org, sess *store.Session) string {
	if sess.AuthMethod == local.MethodPassword && org.State == store.OrgActive && sess.UserID == org.BackupLogin {
		return local.MethodBackup
	}
	return sess.AuthMethod
}
