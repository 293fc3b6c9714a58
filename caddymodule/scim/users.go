package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/identity"
	"github.com/ssogate/ssogate/store"
)

// Attribute names of the User resource that live in store.User fields.
// Everything else a client sends (title, locale, phoneNumbers, the
// enterprise extension, ...) is kept in User.SCIM and returned as given.
const (
	attrUserName    = "userName"
	attrExternalID  = "externalId"
	attrDisplayName = "displayName"
	attrActive      = "active"
	attrName        = "name"
	attrEmails      = "emails"
	attrPassword    = "password"
	attrGroups      = "groups"
	attrMembers     = "members"
)

// notKept are attributes never stored in User.SCIM: they have fields of
// their own, are the server's (id, meta, groups), or must never be kept or
// returned (password: users sign in through their IdP).
var notKept = map[string]bool{
	attrUserName: true, attrExternalID: true, attrDisplayName: true, attrActive: true,
	attrName: true, attrEmails: true, attrPassword: true, attrGroups: true,
	"id": true, "meta": true, "schemas": true,
}

const conflictUser = "A user with this userName or externalId already exists in this organization."

// userHandler serves /Users over the store.
type userHandler struct{ srv *Server }

// userAttributes is a stored user as SCIM attributes, without id,
// externalId, meta and schemas (the library adds those).
func userAttributes(u *store.User) map[string]any {
	a := make(map[string]any, len(u.SCIM)+5)
	for k, v := range u.SCIM {
		if !notKept[k] || k == attrName || k == attrEmails {
			a[k] = v
		}
	}
	a[attrUserName] = u.UserName
	a[attrActive] = u.Active
	if u.DisplayName != "" {
		a[attrDisplayName] = u.DisplayName
	}
	// A copy: the caller may change the result without touching u.
	name := map[string]any{}
	if kept, ok := a[attrName].(map[string]any); ok {
		for k, v := range kept {
			name[k] = v
		}
	}
	if u.GivenName != "" || u.FamilyName != "" {
		if u.GivenName != "" {
			name["givenName"] = u.GivenName
		}
		if u.FamilyName != "" {
			name["familyName"] = u.FamilyName
		}
	}
	if len(name) > 0 {
		a[attrName] = name
	} else {
		delete(a, attrName)
	}
	if emails := emailAttributes(u); emails != nil {
		a[attrEmails] = emails
	} else {
		delete(a, attrEmails)
	}
	return a
}

// emailAttributes returns the user's emails. The full SCIM form (with
// display) is kept in User.SCIM only when a client sent more than the
// store holds, and used only while it still agrees with the store.
func emailAttributes(u *store.User) []any {
	if len(u.Emails) == 0 {
		return nil
	}
	if full, ok := u.SCIM[attrEmails].([]any); ok && sameEmails(full, u.Emails) {
		return full
	}
	out := make([]any, 0, len(u.Emails))
	for _, e := range u.Emails {
		m := map[string]any{"value": e.Value}
		if e.Type != "" {
			m["type"] = e.Type
		}
		if e.Primary {
			m["primary"] = true
		}
		out = append(out, m)
	}
	return out
}

func sameEmails(full []any, emails []store.Email) bool {
	if len(full) != len(emails) {
		return false
	}
	for i, el := range full {
		m, _ := el.(map[string]any)
		v, _ := m["value"].(string)
		t, _ := m["type"].(string)
		p, _ := m["primary"].(bool)
		if v != emails[i].Value || t != emails[i].Type || p != emails[i].Primary {
			return false
		}
	}
	return true
}

// setUserAttributes writes SCIM attributes (as validated by the library,
// or a patched representation) into u. With keepAbsent, an absent
// externalId or active keeps its current value: Okta's PUT omits
// externalId, and neither a PUT that forgets active nor one that forgets
// the IdP's ID should re-activate, deactivate or unlink anyone. Without it
// (a patched full representation), absent means removed.
func setUserAttributes(u *store.User, a map[string]any, keepAbsent bool) error {
	// The library lets a single object through where the schema has an
	// array; it would be dropped (emails) or kept in the wrong shape. A
	// PATCH is held to it for emails only, so that a user stored with
	// such a value before stays patchable.
	for _, attr := range userSchema.Attributes {
		if !keepAbsent && attr.Name() != attrEmails {
			continue
		}
		if v := a[findKey(a, attr.Name())]; attr.MultiValued() && v != nil {
			if _, ok := v.([]any); !ok {
				return badValue(attr.Name() + " must be an array of values.")
			}
		}
	}
	userName, _ := a[attrUserName].(string)
	userName = strings.TrimSpace(userName)
	if userName == "" {
		return badValue("userName is required.")
	}
	u.UserName = userName
	if v, ok := a[attrExternalID].(string); ok {
		u.ExternalID = strings.TrimSpace(v)
	} else if !keepAbsent {
		u.ExternalID = ""
	}
	if v, ok := a[attrActive].(bool); ok {
		u.Active = v
	} else if !keepAbsent {
		// An unassigned "active" is not an active user.
		u.Active = false
	}
	u.DisplayName, _ = a[attrDisplayName].(string)
	u.DisplayName = strings.TrimSpace(u.DisplayName)

	extras := map[string]any{}
	u.GivenName, u.FamilyName = "", ""
	if name, ok := a[attrName].(map[string]any); ok {
		rest := map[string]any{}
		for k, v := range name {
			s, _ := v.(string)
			switch k {
			case "givenName":
				u.GivenName = strings.TrimSpace(s)
			case "familyName":
				u.FamilyName = strings.TrimSpace(s)
			default:
				if !empty(v) {
					rest[k] = v
				}
			}
		}
		if len(rest) > 0 {
			extras[attrName] = rest
		}
	}

	u.Emails = nil
	var full []any
	withDisplay := false
	list, _ := a[attrEmails].([]any)
	for _, el := range list {
		m, _ := el.(map[string]any)
		v, _ := m["value"].(string)
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		t, _ := m["type"].(string)
		p, _ := m["primary"].(bool)
		e := store.Email{Value: v, Type: t, Primary: p}
		// At most one primary address (RFC 7643 §2.4): the first wins.
		if e.Primary {
			for _, prev := range u.Emails {
				if prev.Primary {
					e.Primary = false
				}
			}
		}
		u.Emails = append(u.Emails, e)
		fm := map[string]any{"value": e.Value}
		if e.Type != "" {
			fm["type"] = e.Type
		}
		if e.Primary {
			fm["primary"] = true
		}
		if d, _ := m["display"].(string); d != "" {
			fm["display"] = d
			withDisplay = true
		}
		full = append(full, fm)
	}
	if withDisplay {
		extras[attrEmails] = full
	}

	for k, v := range a {
		if notKept[k] || empty(v) {
			continue
		}
		extras[k] = v
	}
	u.SCIM = nil
	if len(extras) > 0 {
		u.SCIM = extras
	}
	return nil
}

// empty tells values not worth keeping: null, "", [] and {}.
func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// resource is the user as the library returns it: the stored attributes,
// what can be derived for users that sign-in or the operator created
// (derived), and the groups the user is a direct member of.
func (h *userHandler) resource(u *store.User, p projection) (elimity.Resource, error) {
	return h.resourceOf(u, p, true)
}

// resourceOf is resource; a user created just now is in no group yet, so
// its groups need no look-up (lookUpGroups false).
func (h *userHandler) resourceOf(u *store.User, p projection, lookUpGroups bool) (elimity.Resource, error) {
	a := userAttributes(u)
	derive(a, u)
	if lookUpGroups && p.wants(attrGroups) {
		ids, err := h.srv.cfg.Store.GroupsOfUser(u.OrgID, u.ID)
		if err != nil {
			return elimity.Resource{}, h.srv.storeError(err, "", "")
		}
		if len(ids) > 0 {
			base := h.srv.BaseURL(u.OrgID) + "/Groups/"
			groups := make([]any, len(ids))
			for i, id := range ids {
				groups[i] = map[string]any{"value": id, "$ref": base + url.PathEscape(id), "type": "direct"}
			}
			a[attrGroups] = groups
		}
	}
	res := elimity.Resource{
		ID:         u.ID,
		Attributes: p.apply(a),
		Meta:       elimity.Meta{Created: &u.Created, LastModified: &u.Updated},
	}
	if u.ExternalID != "" && p.wants(attrExternalID) {
		res.ExternalID = optional.NewString(u.ExternalID)
	}
	return res, nil
}

// derive completes the representation of a user that sign-in or the
// operator created, which holds what the SAML assertion or the operator
// gave: clients such as Okta's spec test expect every user to have a name
// and an email. The derived values are only returned, never stored, and
// users provisioned over SCIM are returned exactly as the IdP sent them.
//
//   - name: givenName and familyName as stored, else split from the
//     display name at its last space ("Mary Ann Lee" → "Mary Ann",
//     "Lee"); formatted from those or the display name.
//   - emails: the userName, when it is an email address and the user
//     has none.
func derive(a map[string]any, u *store.User) {
	if u.Source == store.SourceSCIM {
		return
	}
	if _, ok := a[attrName]; !ok {
		given, family := u.GivenName, u.FamilyName
		if given == "" && family == "" {
			if i := strings.LastIndexByte(u.DisplayName, ' '); i > 0 {
				given, family = strings.TrimSpace(u.DisplayName[:i]), strings.TrimSpace(u.DisplayName[i+1:])
			}
		}
		name := map[string]any{}
		if given != "" {
			name["givenName"] = given
		}
		if family != "" {
			name["familyName"] = family
		}
		if f := strings.TrimSpace(given + " " + family); f != "" {
			name["formatted"] = f
		} else if u.DisplayName != "" {
			name["formatted"] = u.DisplayName
		}
		if len(name) > 0 {
			a[attrName] = name
		}
	}
	if _, ok := a[attrEmails]; !ok {
		if addr, err := identity.ParseEmail(u.UserName); err == nil {
			a[attrEmails] = []any{map[string]any{"value": addr, "type": "work", "primary": true}}
		}
	}
}

// Create provisions a user. A user that an earlier SAML sign-in created
// (before provisioning reached them) is adopted rather than duplicated:
// it is matched by externalId, then userName, then email, the way sign-ins
// are matched to provisioned users.
func (h *userHandler) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	org := orgOf(r)
	u := &store.User{OrgID: org, Active: true, Source: store.SourceSCIM}
	if err := setUserAttributes(u, attrs, true); err != nil {
		return elimity.Resource{}, err
	}
	if err := h.srv.limits.checkUser(u); err != nil {
		return elimity.Resource{}, err
	}
	// The ID is chosen here so that the audit event, written in the same
	// transaction as the user, can name it.
	u.ID = uuid.NewString()
	ev := h.srv.auditEvent(org, h.srv.cfg.ClientIP(r), "scim.user.create", "success",
		map[string]string{"user_id": u.ID, "userName": u.UserName})
	opts := []store.WriteOption{h.srv.limits.capped(), store.MaxUsers(h.srv.limits.MaxUsers), store.Audited(ev)}
	// First as if the user were new, which an initial import's users
	// are: the creation itself checks the domains and that nobody
	// matches, so the common case needs no look-up of its own.
	domains := userDomains(u)
	err := h.srv.cfg.Store.ProvisionUser(u, append(opts, store.Unmatched(domains))...)
	var owned *store.DomainOwnedError
	switch {
	case errors.As(err, &owned):
		return elimity.Resource{}, foreignDomain(org, owned.Domain, owned.Owner)
	case errors.Is(err, store.ErrMatched):
		// Someone matches: look them up and decide.
		adopted, err := h.createMatched(r, org, u, domains, opts)
		if err != nil {
			return elimity.Resource{}, err
		}
		if adopted {
			return h.resource(u, projectionOf(r))
		}
	case err != nil:
		return elimity.Resource{}, h.provisionError(err)
	}
	return h.resourceOf(u, projectionOf(r), false)
}

// provisionError is the answer to a failed ProvisionUser.
func (h *userHandler) provisionError(err error) error {
	if errors.Is(err, store.ErrUserLimit) {
		return quotaError("users", h.srv.limits.MaxUsers)
	}
	return h.srv.storeError(err, "", conflictUser)
}

// createMatched creates u, which matches an existing user, or adopts the
// one it matches: it looks up the domains and the users the request may
// mean in one store read, refuses a foreign domain, adopts a user that
// SAML sign-in created (u becomes it, and adopted is true), and creates u
// otherwise. Its error is the answer to give.
func (h *userHandler) createMatched(r *http.Request, org string, u *store.User, domains []string, opts []store.WriteOption) (adopted bool, err error) {
	look, err := h.srv.cfg.Store.LookUpProvisioning(org, domains, u.ExternalID, u.UserName, emailValues(u))
	if err != nil {
		return false, h.srv.storeError(err, "", "")
	}
	for i, d := range domains {
		if err := foreignDomain(org, d, look.DomainOwners[i]); err != nil {
			return false, err
		}
	}
	// No lock: concurrent creations share the store's transaction, which
	// checks uniqueness and max_users with the ones before it counted
	// (store.CreateUser), and an adoption is an update that re-checks
	// its candidate.
	a, err := h.adopt(org, u, look)
	if err != nil {
		return false, err
	}
	if a != nil {
		*u = *a
		h.audit(r, "scim.user.create", u, map[string]string{"adopted": "signed-in user"})
		return true, nil
	}
	if err := h.srv.cfg.Store.ProvisionUser(u, opts...); err != nil {
		return false, h.provisionError(err)
	}
	return false, nil
}

// errChangedMeanwhile aborts an update whose user changed between its
// draft and its write.
var errChangedMeanwhile = scimerrors.ScimError{Status: http.StatusConflict, Detail: "The user changed while the request was processed; send it again."}

// errNotAdoptable aborts an adoption whose candidate changed meanwhile.
var errNotAdoptable = errors.New("user is no longer one created by sign-in")

// adopt finds a user that SAML sign-in created and that in describes
// (among the matches of look), and turns it into this provisioned user.
// It returns nil when there is none. A match by externalId or userName
// that is not such a user is the conflict the IdP must hear about.
func (h *userHandler) adopt(org string, in *store.User, look *store.Provisioning) (*store.User, error) {
	st := h.srv.cfg.Store
	byExt, byName, byEmail := look.ByExternalID, look.ByUserName, look.ByEmail
	var cand *store.User
	for _, u := range []*store.User{byExt, byName} {
		if u == nil {
			continue
		}
		if u.Source != store.SourceSAML {
			return nil, h.srv.storeError(store.ErrConflict, "", conflictUser)
		}
		cand = u
		break
	}
	if cand == nil {
		for _, u := range byEmail {
			if u.Source == store.SourceSAML {
				cand = u
				break
			}
		}
	}
	if cand == nil {
		return nil, nil
	}
	u, err := st.UpdateUser(org, cand.ID, func(x *store.User) error {
		if x.Source != store.SourceSAML {
			return errNotAdoptable
		}
		x.UserName, x.ExternalID, x.Emails = in.UserName, in.ExternalID, in.Emails
		x.DisplayName, x.GivenName, x.FamilyName = in.DisplayName, in.GivenName, in.FamilyName
		x.Active, x.SCIM, x.Source = in.Active, in.SCIM, store.SourceSCIM
		return nil
	}, h.srv.limits.capped())
	if errors.Is(err, errNotAdoptable) {
		err = store.ErrConflict
	}
	if err != nil {
		return nil, h.srv.storeError(err, "", conflictUser)
	}
	return u, nil
}

// Get returns one user.
func (h *userHandler) Get(r *http.Request, id string) (elimity.Resource, error) {
	u, err := h.srv.cfg.Store.GetUser(orgOf(r), id)
	if err != nil {
		return elimity.Resource{}, h.srv.storeError(err, id, "")
	}
	return h.resource(u, projectionOf(r))
}

// GetAll lists users, filtered through the store's indexes (query.go).
func (h *userHandler) GetAll(r *http.Request, params elimity.ListRequestParams) (elimity.Page, error) {
	return h.list(r, params, projectionOf(r))
}

// Search serves POST /Users/.search like GetAll.
func (h *userHandler) Search(r *http.Request, params elimity.SearchParams) (elimity.Page, error) {
	return h.list(r, elimity.ListRequestParams{Count: params.Count, StartIndex: params.StartIndex, FilterValidator: params.FilterValidator},
		newProjection(params.Attributes, params.ExcludedAttributes))
}

// Replace is PUT: the body is the whole user (but see setUserAttributes
// for externalId and active).
func (h *userHandler) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	return h.update(r, id, func(u *store.User) error {
		return setUserAttributes(u, attrs, true)
	})
}

// Patch applies PATCH operations to the user's representation and stores
// the result.
func (h *userHandler) Patch(r *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	return h.update(r, id, func(u *store.User) error {
		rep := userAttributes(u)
		if u.ExternalID != "" {
			rep[attrExternalID] = u.ExternalID
		}
		if err := applyPatch(rep, ops, userPatchSchema, enterpriseSchema); err != nil {
			return err
		}
		return setUserAttributes(u, rep, false)
	})
}

// update changes a user through change, in one store transaction, and
// ends the user's sessions when it deactivates them.
func (h *userHandler) update(r *http.Request, id string, change func(*store.User) error) (elimity.Resource, error) {
	org := orgOf(r)
	st := h.srv.cfg.Store
	defer h.srv.locks.lock(resourceKey(org, id))()
	// The change is first worked out on a copy, to learn the addresses'
	// domains: they are looked up outside the write transaction (the
	// store takes no nested calls). The lock above keeps other SCIM
	// writes of this user out meanwhile; anything else that changes its
	// addresses in between makes the write below refuse.
	draft, err := st.GetUser(org, id)
	if err != nil {
		return elimity.Resource{}, h.srv.storeError(err, id, conflictUser)
	}
	if err := change(draft); err != nil {
		return elimity.Resource{}, asScimError(err)
	}
	if err := h.srv.limits.checkUser(draft); err != nil {
		return elimity.Resource{}, err
	}
	checked := userDomains(draft)
	if err := h.srv.checkDomains(org, checked); err != nil {
		return elimity.Resource{}, err
	}
	var wasActive, onlyDeactivates bool
	write := func(u *store.User) error {
		wasActive = u.Active
		before := withoutActive(u)
		if err := change(u); err != nil {
			return err
		}
		if err := h.srv.limits.checkUser(u); err != nil {
			return err
		}
		for _, d := range userDomains(u) {
			if !slices.Contains(checked, d) {
				return errChangedMeanwhile
			}
		}
		// From now on the IdP manages this user; a local account stays
		// one, so that its password keeps working as the backup login.
		if u.Source == store.SourceSAML {
			u.Source = store.SourceSCIM
		}
		onlyDeactivates = wasActive && !u.Active && before != nil && bytes.Equal(before, withoutActive(u))
		return nil
	}
	u, err := st.UpdateUser(org, id, write, h.srv.limits.capped())
	if errors.Is(err, store.ErrQuota) && onlyDeactivates {
		// The IdP is taking someone's access away, which must not wait
		// for room. A deactivation alone grows the user by a few bytes
		// at most ("false", a longer timestamp), and only once per
		// reactivation, which is held to the limit.
		u, err = st.UpdateUser(org, id, func(u *store.User) error {
			if err := write(u); err != nil {
				return err
			}
			if !onlyDeactivates {
				return errChangedMeanwhile
			}
			return nil
		})
	}
	if err != nil {
		var se scimerrors.ScimError
		if errors.As(err, &se) {
			return elimity.Resource{}, se
		}
		return elimity.Resource{}, h.srv.storeError(err, id, conflictUser)
	}
	action := "scim.user.update"
	switch {
	case wasActive && !u.Active:
		action = "scim.user.deactivate"
		// The per-request re-check refuses the user anyway; deleting the
		// sessions makes that independent of it.
		if _, err := st.DeleteUserSessions(org, u.ID); err != nil {
			h.srv.log.Error("ending sessions of a deactivated user", zap.String("org", org), zap.String("user_id", u.ID), zap.Error(err))
		}
	case !wasActive && u.Active:
		action = "scim.user.reactivate"
	}
	h.audit(r, action, u, nil)
	return h.resource(u, projectionOf(r))
}

// withoutActive is the user as JSON, but for the fields a deactivation
// changes, to tell a deactivation from other changes.
func withoutActive(u *store.User) []byte {
	c := *u
	c.Active, c.Updated, c.Source = false, time.Time{}, ""
	b, err := json.Marshal(&c)
	if err != nil {
		return nil
	}
	return b
}

// Delete removes the user, its memberships and sessions, and remembers
// its identifiers so that a SAML sign-in cannot bring it back (see
// store.DeprovisionUser).
func (h *userHandler) Delete(r *http.Request, id string) error {
	org := orgOf(r)
	defer h.srv.locks.lock(orgKey(org))()
	u, err := h.srv.cfg.Store.GetUser(org, id)
	if err != nil {
		return h.srv.storeError(err, id, "")
	}
	if err := h.srv.cfg.Store.DeprovisionUser(org, id); err != nil {
		return h.srv.storeError(err, id, "")
	}
	h.audit(r, "scim.user.delete", u, nil)
	return nil
}

func (h *userHandler) audit(r *http.Request, action string, u *store.User, details map[string]string) {
	if details == nil {
		details = map[string]string{}
	}
	details["user_id"] = u.ID
	details["userName"] = u.UserName
	h.srv.audit(u.OrgID, h.srv.cfg.ClientIP(r), action, "success", details)
}
