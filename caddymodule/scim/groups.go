package scim

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	scimfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/scim2/filter-parser/v2"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/identity"
	"github.com/ssogate/ssogate/store"
)

// conflictGroup: externalIds are unique; displayNames may be shared, as in
// the directories the IdPs push from (an admin-group mapping by a shared
// name then admits nobody: see access.go).
const conflictGroup = "A group with this externalId already exists in this organization."

// groupHandler serves /Groups over the store. Members are user IDs of the
// organization; membership of the org's admin group decides who may sign
// in (SPEC §3.5).
type groupHandler struct{ srv *Server }

// resource is the group as the library returns it. Members carry their
// value and $ref; their display names would cost a read per member.
func (h *groupHandler) resource(g *store.Group, p projection) elimity.Resource {
	return h.build(g, p, !p.subAttributes(attrMembers))
}

// build makes the group's resource. With raw, members are one
// pre-encoded JSON array rather than a map per member: a group of 50,000
// members is 7 MiB of JSON, and as maps it cost ten times that in
// allocations per request. Filters and projections that look into the
// members need the maps.
func (h *groupHandler) build(g *store.Group, p projection, raw bool) elimity.Resource {
	a := map[string]any{attrDisplayName: g.DisplayName}
	if len(g.Members) > 0 && p.wants(attrMembers) {
		base := h.srv.BaseURL(g.OrgID) + "/Users/"
		if raw {
			a[attrMembers] = membersJSON(base, g.Members)
		} else {
			members := make([]any, len(g.Members))
			for i, id := range g.Members {
				members[i] = map[string]any{"value": id, "$ref": base + url.PathEscape(id), "type": "User"}
			}
			a[attrMembers] = members
		}
	}
	res := elimity.Resource{
		ID:         g.ID,
		Attributes: p.apply(a),
		Meta:       elimity.Meta{Created: &g.Created, LastModified: &g.Updated},
	}
	if g.ExternalID != "" && p.wants(attrExternalID) {
		res.ExternalID = optional.NewString(g.ExternalID)
	}
	return res
}

// membersJSON encodes members as the maps of build would be (keys in
// encoding/json's order), into a buffer of the exact size.
func membersJSON(base string, ids []string) json.RawMessage {
	const per = len(`{"$ref":"","type":"User","value":""},`) + 4 // 4 quotes
	size := 2
	refs := make([]string, len(ids))
	for i, id := range ids {
		refs[i] = base + url.PathEscape(id)
		size += per + len(refs[i]) + len(id)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	for i, id := range ids {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"$ref":`...)
		buf, _ = jsontext.AppendQuote(buf, refs[i])
		buf = append(buf, `,"type":"User","value":`...)
		buf, _ = jsontext.AppendQuote(buf, id)
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// membersFrom reads member IDs from a members value: a list of objects
// whose "value" is a user's id.
func membersFrom(v any) ([]string, error) {
	var ids []string
	for _, el := range asList(v) {
		m, _ := el.(map[string]any)
		id, _ := m["value"].(string)
		id = strings.TrimSpace(id)
		if id == "" {
			return nil, badValue("Each member needs a value: the id of a user of this organization.")
		}
		if t, _ := m["type"].(string); t != "" && !strings.EqualFold(t, "User") {
			return nil, badValue("Only users can be members of a group.")
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// setGroupAttributes writes a validated POST or PUT body into g. An
// absent externalId keeps its value (as for users); absent members means
// none, as RFC 7644 §3.5.1 says for PUT.
func setGroupAttributes(g *store.Group, a map[string]any) error {
	name, _ := a[attrDisplayName].(string)
	name = strings.TrimSpace(name)
	if name == "" {
		return badValue("displayName is required.")
	}
	g.DisplayName = name
	if v, ok := a[attrExternalID].(string); ok {
		g.ExternalID = strings.TrimSpace(v)
	}
	members, err := membersFrom(a[attrMembers])
	if err != nil {
		return err
	}
	g.Members = members
	return nil
}

// Create stores a new group, with the members the body lists.
func (h *groupHandler) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	org := orgOf(r)
	g := &store.Group{OrgID: org}
	if err := setGroupAttributes(g, attrs); err != nil {
		return elimity.Resource{}, err
	}
	if err := h.srv.limits.checkGroup(g); err != nil {
		return elimity.Resource{}, err
	}
	unlock := h.srv.locks.lock(orgKey(org))
	// Creations take turns (the lock), so the count holds until the write.
	_, n, err := h.srv.cfg.Store.ListGroups(org, 0, 0)
	switch {
	case err != nil:
	case n >= h.srv.limits.MaxGroups:
		unlock()
		return elimity.Resource{}, quotaError("groups", h.srv.limits.MaxGroups)
	default:
		err = h.srv.cfg.Store.CreateGroup(g, h.srv.limits.capped())
	}
	unlock()
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return elimity.Resource{}, h.memberError(org, g.Members, err)
		}
		return elimity.Resource{}, h.srv.storeError(err, "", conflictGroup)
	}
	h.audit(r, "scim.group.create", g, len(g.Members), 0)
	h.checkAdminName(r, g)
	return h.resource(g, projectionOf(r)), nil
}

// memberError explains a store ErrNotFound about a group's members: it
// names one that is not a user of the organization.
func (h *groupHandler) memberError(org string, members []string, cause error) error {
	for _, id := range members {
		if _, err := h.srv.cfg.Store.GetUser(org, id); errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return badValue("Member " + strconv.Quote(id) + " is not a user of this organization.")
		}
	}
	return h.srv.storeError(cause, "", "")
}

// Get returns one group.
func (h *groupHandler) Get(r *http.Request, id string) (elimity.Resource, error) {
	g, err := h.srv.cfg.Store.GetGroup(orgOf(r), id)
	if err != nil {
		return elimity.Resource{}, h.srv.storeError(err, id, "")
	}
	return h.resource(g, projectionOf(r)), nil
}

// GetAll lists groups (query.go).
func (h *groupHandler) GetAll(r *http.Request, params elimity.ListRequestParams) (elimity.Page, error) {
	return h.list(r, params, projectionOf(r))
}

// Search serves POST /Groups/.search like GetAll.
func (h *groupHandler) Search(r *http.Request, params elimity.SearchParams) (elimity.Page, error) {
	return h.list(r, elimity.ListRequestParams{Count: params.Count, StartIndex: params.StartIndex, FilterValidator: params.FilterValidator},
		newProjection(params.Attributes, params.ExcludedAttributes))
}

// Replace is PUT: the body is the whole group, members included (Okta's
// full membership update).
func (h *groupHandler) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	return h.update(r, id, func(g *store.Group) error {
		return setGroupAttributes(g, attrs)
	}, nil)
}

// Patch applies PATCH operations: renames, externalId changes, and member
// additions and removals in every shape Okta and Entra ID send.
//
// The answer is the group, or 204 No Content (RFC 7644 §3.5.2 allows
// either) once it has more than patchEchoMembers members: Okta and Entra
// ID send membership changes in many small PATCHes and read nothing from
// the answer, and echoing a large group (7 MiB at 50,000 members) for
// each of them is the largest response a tenant could make the gateway
// build.
func (h *groupHandler) Patch(r *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	res, err := h.update(r, id, func(g *store.Group) error {
		return applyGroupPatch(g, ops)
	}, func(g *store.Group) bool { return len(g.Members) <= patchEchoMembers })
	return res, err
}

// patchEchoMembers is the largest group a PATCH answers with.
const patchEchoMembers = 1000

// update changes a group through change, in one store transaction, and
// returns it unless echo says not to (the empty resource is the
// library's 204).
func (h *groupHandler) update(r *http.Request, id string, change func(*store.Group) error, echo func(*store.Group) bool) (elimity.Resource, error) {
	org := orgOf(r)
	st := h.srv.cfg.Store
	unlock := h.srv.locks.lock(resourceKey(org, id))
	var before map[string]bool
	var after []string
	g, err := st.UpdateGroup(org, id, func(g *store.Group) error {
		before = make(map[string]bool, len(g.Members))
		for _, m := range g.Members {
			before[m] = true
		}
		if err := change(g); err != nil {
			return err
		}
		if err := h.srv.limits.checkGroup(g); err != nil {
			return err
		}
		after = g.Members
		return nil
	}, h.srv.limits.capped())
	unlock()
	if err != nil {
		var se scimerrors.ScimError
		switch {
		case errors.As(err, &se):
			return elimity.Resource{}, se
		case errors.Is(err, store.ErrNotFound):
			if _, gerr := st.GetGroup(org, id); gerr == nil {
				return elimity.Resource{}, h.memberError(org, after, err)
			}
		}
		return elimity.Resource{}, h.srv.storeError(err, id, conflictGroup)
	}
	added := 0
	for _, m := range g.Members {
		if !before[m] {
			added++
		}
		delete(before, m)
	}
	h.audit(r, "scim.group.update", g, added, len(before))
	h.checkAdminName(r, g)
	if echo != nil && !echo(g) {
		return elimity.Resource{}, nil
	}
	return h.resource(g, projectionOf(r)), nil
}

// Delete removes the group and its memberships.
func (h *groupHandler) Delete(r *http.Request, id string) error {
	org := orgOf(r)
	g, err := h.srv.cfg.Store.GetGroup(org, id)
	if err != nil {
		return h.srv.storeError(err, id, "")
	}
	unlock := h.srv.locks.lock(orgKey(org))
	err = h.srv.cfg.Store.DeleteGroup(org, id)
	unlock()
	if err != nil {
		return h.srv.storeError(err, id, "")
	}
	h.audit(r, "scim.group.delete", g, 0, len(g.Members))
	return nil
}

func (h *groupHandler) audit(r *http.Request, action string, g *store.Group, added, removed int) {
	details := map[string]string{"group_id": g.ID, "displayName": g.DisplayName}
	if added > 0 {
		details["members_added"] = strconv.Itoa(added)
	}
	if removed > 0 {
		details["members_removed"] = strconv.Itoa(removed)
	}
	h.srv.audit(g.OrgID, h.srv.cfg.ClientIP(r), action, "success", details)
}

// checkAdminName tells the organization, in its audit trail and the log,
// when g makes the admin-group mapping's name one that several
// provisioned groups have and no group has the mapping's ID: from then on
// that name admits nobody (see authorized in package caddymodule), and
// the mapping must name the group by its ID. The write stands; the IdP
// only pushed what its directory has.
func (h *groupHandler) checkAdminName(r *http.Request, g *store.Group) {
	st := h.srv.cfg.Store
	o, err := st.GetOrg(g.OrgID)
	if err != nil {
		return
	}
	m := o.AdminGroup
	if m.Name == "" || !identity.EqualFold(m.Name, g.DisplayName) {
		return
	}
	if m.ID != "" {
		if _, err := st.GroupIDByExternalID(o.ID, m.ID); err == nil {
			return
		}
	}
	ids, err := st.GroupIDsByDisplayName(o.ID, m.Name, 2)
	if err != nil || len(ids) < 2 {
		return
	}
	h.srv.log.Warn("several provisioned groups have the admin group's name, which now admits nobody; map the admin group by its ID",
		zap.String("org", o.ID), zap.String("group_id", g.ID))
	h.srv.audit(o.ID, h.srv.cfg.ClientIP(r), "scim.group.admin_name_shared", "warning",
		map[string]string{"group_id": g.ID, "displayName": g.DisplayName})
}

// memberSet is a group's members in order, with constant-time look-ups.
type memberSet struct {
	ids []string
	in  map[string]bool
}

func newMemberSet(ids []string) *memberSet {
	s := &memberSet{in: make(map[string]bool, len(ids))}
	s.add(ids...)
	return s
}

func (s *memberSet) add(ids ...string) {
	for _, id := range ids {
		if !s.in[id] {
			s.in[id] = true
			s.ids = append(s.ids, id)
		}
	}
}

func (s *memberSet) remove(ids ...string) {
	n := 0
	for _, id := range ids {
		if s.in[id] {
			delete(s.in, id)
			n++
		}
	}
	if n == 0 {
		return
	}
	kept := s.ids[:0]
	for _, id := range s.ids {
		if s.in[id] {
			kept = append(kept, id)
		}
	}
	s.ids = kept
}

// applyGroupPatch applies ops to g. Members are worked on as a set of IDs
// rather than as SCIM values, so that adding or removing one member of a
// large group costs no more than the store's write of it.
func applyGroupPatch(g *store.Group, ops []elimity.PatchOperation) error {
	ms := newMemberSet(g.Members)
	for _, op := range ops {
		if op.Path != nil {
			if err := applyGroupOp(g, ms, strings.ToLower(op.Op), *op.Path, op.Value); err != nil {
				return err
			}
			continue
		}
		values, ok := op.Value.(map[string]any)
		if !ok {
			return badValue("An operation without a path needs an object value.")
		}
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p, err := filter.ParsePath([]byte(k))
			if err != nil {
				return scimerrors.ScimErrorInvalidPath
			}
			if err := applyGroupOp(g, ms, strings.ToLower(op.Op), p, values[k]); err != nil {
				return err
			}
		}
	}
	g.Members = ms.ids
	return nil
}

func applyGroupOp(g *store.Group, ms *memberSet, op string, p filter.Path, value any) error {
	if uri := p.AttributePath.URI(); uri != "" && !strings.EqualFold(uri, groupSchema.ID) {
		return scimerrors.ScimErrorInvalidPath
	}
	attr, ok := groupPatchSchema.Attributes.ContainsAttribute(p.AttributePath.AttributeName)
	if !ok {
		return scimerrors.ScimErrorInvalidPath
	}
	plain := p.ValueExpression == nil && p.AttributePath.SubAttribute == nil
	switch attr.Name() {
	case attrDisplayName:
		if !plain {
			return scimerrors.ScimErrorInvalidPath
		}
		name, _ := value.(string)
		name = strings.TrimSpace(name)
		if op == elimity.PatchOperationRemove || name == "" {
			return badValue("displayName is required.")
		}
		g.DisplayName = name
	case attrExternalID:
		if !plain {
			return scimerrors.ScimErrorInvalidPath
		}
		v, _ := value.(string)
		if op == elimity.PatchOperationRemove {
			v = ""
		}
		g.ExternalID = strings.TrimSpace(v)
	case attrMembers:
		return applyMembersOp(ms, attr, op, p, value)
	default:
		return scimerrors.ScimErrorInvalidPath
	}
	return nil
}

func applyMembersOp(ms *memberSet, attr schema.CoreAttribute, op string, p filter.Path, value any) error {
	if p.AttributePath.SubAttribute != nil {
		return scimerrors.ScimErrorInvalidPath
	}
	if p.ValueExpression == nil {
		switch op {
		case elimity.PatchOperationRemove:
			if value == nil {
				ms.remove(append([]string(nil), ms.ids...)...)
				return nil
			}
			ids, err := membersFrom(value)
			if err != nil {
				return err
			}
			ms.remove(ids...)
		case elimity.PatchOperationReplace:
			ids, err := membersFrom(value)
			if err != nil {
				return err
			}
			ms.remove(append([]string(nil), ms.ids...)...)
			ms.add(ids...)
		default:
			ids, err := membersFrom(value)
			if err != nil {
				return err
			}
			ms.add(ids...)
		}
		return nil
	}
	// members[value eq "…"] (Okta's and Entra ID's removals), possibly
	// followed by a sub-attribute. No member details are kept, so
	// changing one (members[…].display) changes nothing.
	if p.SubAttribute != nil {
		return nil
	}
	matched := matchingMembers(ms, attr, p.ValueExpression)
	switch op {
	case elimity.PatchOperationRemove:
		ms.remove(matched...)
	case elimity.PatchOperationReplace:
		ids, err := membersFrom(value)
		if err != nil {
			return err
		}
		ms.remove(matched...)
		ms.add(ids...)
	default:
		ids, err := membersFrom(value)
		if err != nil {
			return err
		}
		ms.add(ids...)
	}
	return nil
}

// matchingMembers returns the members a value filter selects. Equality on
// value (alone or or-ed) is looked up directly; anything else is run by
// the library's filter on each member.
func matchingMembers(ms *memberSet, attr schema.CoreAttribute, expr filter.Expression) []string {
	if ids, ok := memberValues(expr); ok {
		var out []string
		for _, id := range ids {
			if ms.in[id] {
				out = append(out, id)
			}
		}
		return out
	}
	v := scimfilter.NewFilterValidator(expr, schema.Schema{Attributes: scimfilter.MultiValuedFilterAttributes(attr)})
	var out []string
	for _, id := range ms.ids {
		if passes(v, map[string]any{"value": id, "type": "User"}) {
			out = append(out, id)
		}
	}
	return out
}

// memberValues recognises `value eq "x"` and or-chains of them.
func memberValues(expr filter.Expression) ([]string, bool) {
	switch e := expr.(type) {
	case *filter.AttributeExpression:
		s, ok := e.CompareValue.(string)
		if e.Operator != filter.EQ || !ok || e.AttributePath.SubAttribute != nil || !strings.EqualFold(e.AttributePath.AttributeName, "value") {
			return nil, false
		}
		return []string{s}, true
	case *filter.LogicalExpression:
		if e.Operator != filter.OR {
			return nil, false
		}
		l, ok := memberValues(e.Left)
		if !ok {
			return nil, false
		}
		r, ok := memberValues(e.Right)
		if !ok {
			return nil, false
		}
		return append(l, r...), true
	}
	return nil, false
}
