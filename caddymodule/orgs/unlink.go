package orgs

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/ssogate/ssogate/store"
)

// Unlinked is the result of UnlinkUser.
type Unlinked struct {
	UserID   string `json:"user_id"`
	UserName string `json:"user_name"`
	// PreviousID is the IdP identifier the account was linked to; empty
	// when it was linked to none.
	PreviousID string `json:"previous_id"`
	// SessionsEnded counts the sessions the unlink signed out.
	SessionsEnded int `json:"sessions_ended"`
}

// errProvisioned carries the refusal out of the store transaction.
var errProvisioned = errors.New("provisioned by SCIM")

// UnlinkUser forgets the IdP identifier (objectidentifier, or a persistent
// NameID) that SAML sign-ins stored for a user, and signs the user out: the
// next sign-in links the account to whatever stable identifier the IdP
// then asserts. This is the way out when the stored identifier was wrong,
// as it was when an IdP sent a transient NameID as the only identifier
// and later a real one, which the gateway refuses as another person. ref
// is a user ID or an email address. Users provisioned by SCIM are refused:
// their externalId is the IdP provisioning's to change.
func (s *Service) UnlinkUser(actor, orgID, ref string) (*Unlinked, error) {
	u, err := s.userByRef(orgID, ref, true)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, notFound("organization %q has no user %q", orgID, ref)
	}
	out := &Unlinked{UserID: u.ID, UserName: u.UserName}
	_, err = s.store.UpdateUser(orgID, u.ID, func(u *store.User) error {
		if u.Source == store.SourceSCIM {
			return errProvisioned
		}
		out.PreviousID = u.ExternalID
		u.ExternalID = ""
		return nil
	})
	switch {
	case errors.Is(err, errProvisioned):
		s.audit(orgID, actor, "user.unlink", OutcomeDenied, map[string]string{"user": u.UserName, "user_id": u.ID, "reason": "provisioned by SCIM"})
		return nil, conflict("%s is provisioned by SCIM: its identifier is set by your identity provider's provisioning, and sign-ins do not check it; change it there", u.UserName)
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound("organization %q has no user %q", orgID, ref)
	case err != nil:
		return nil, orgErr(orgID, err, "unlinking a user of")
	}
	if out.SessionsEnded, err = s.store.DeleteUserSessions(orgID, u.ID); err != nil {
		return nil, orgErr(orgID, err, "ending the sessions of a user of")
	}
	s.audit(orgID, actor, "user.unlink", OutcomeSuccess, map[string]string{
		"user": u.UserName, "user_id": u.ID, "previous_id": out.PreviousID, "sessions_ended": strconv.Itoa(out.SessionsEnded),
	})
	return out, nil
}

func (a *adminAPI) unlinkUser(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := decodeJSON(w, r, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	v, err := a.s.UnlinkUser(a.actor(r), a.org(r), r.PathValue("user"))
	return http.StatusOK, v, err
}
