package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	scimfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/schema"
	"github.com/scim2/filter-parser/v2"

	"github.com/ssogate/ssogate/store"
)

// Filters are answered from the store's indexes where they can be: when a
// filter contains, at its top or in every branch of an "or", an equality
// the indexes answer — userName, externalId, id or emails.value for users;
// displayName, externalId, id or members.value for groups — only those
// candidates are read and checked against the whole filter. Any other
// filter (ne, co, sw, ew, pr, gt/ge/lt/le, not, meta.lastModified for
// delta sync, extension attributes) is checked against every resource of
// the organization, which is allowed up to the same bound as candidates
// (mostUserCandidates, mostGroupCandidates); a larger organization gets
// tooMany and must add an indexed equality. Results are in id order.

// Schemas the filters are checked against: the core schema with the
// common attributes (id, externalId, meta), as the library validates them.
var (
	userFilterSchema  = withCommon(userSchema)
	groupFilterSchema = withCommon(groupSchema)
)

func withCommon(s schema.Schema) schema.Schema {
	attrs := make(schema.Attributes, 0, len(s.Attributes)+3)
	attrs = append(attrs, s.Attributes...)
	s.Attributes = append(attrs, schema.CommonAttributes()...)
	return s
}

// filterView adds the common attributes to a representation, for filters.
func filterView(a map[string]any, id, externalID string, created, updated time.Time, resourceType string) map[string]any {
	a["id"] = id
	if externalID != "" {
		a[attrExternalID] = externalID
	}
	a["meta"] = map[string]any{
		"resourceType": resourceType,
		"created":      created.Format(time.RFC3339Nano),
		"lastModified": updated.Format(time.RFC3339Nano),
	}
	return a
}

// window cuts the 1-based window [startIndex, startIndex+count) from n
// sorted matches.
func window(n, startIndex, count int) (int, int) {
	from := min(max(startIndex-1, 0), n)
	return from, min(from+max(count, 0), n)
}

// listing is how users and groups are listed: without a filter, a page
// straight from the store; with one, the IDs of the candidates the
// indexes give, each read and checked against the whole filter (one
// record held at a time), sorted and cut to the page, whose records are
// read again. Either way the page ends early once it holds pageBytes of
// resources.
type listing[T any] struct {
	all        func(offset, count int) ([]T, int, error)
	candidates func(filter.Expression) (idSet, bool, error)
	load       func(id string) (T, error)
	id         func(T) string
	matches    func(T, filter.Expression) (bool, error)
	resource   func(T) (elimity.Resource, error)
	storeError func(error) error
	pageBytes  int
	batch      int // records read at a time without a filter
	most       int // candidates a filter may have (tooMany beyond)
}

// idSet is a set of resource IDs.
type idSet = map[string]struct{}

// Most candidates a filter may select. Every candidate is read and
// checked, so these bound a filter's work: users are a few KiB each,
// groups up to 2 MiB. Real filters select one (userName, externalId,
// displayName, id) or the groups of one user.
const (
	mostUserCandidates  = 10_000
	mostGroupCandidates = 500
)

func tooMany(most int) error {
	e := scimerrors.ScimErrorTooMany
	e.Detail = fmt.Sprintf("The filter selects more than %d resources; narrow it down.", most)
	return e
}

// Unfiltered listings read this many records at a time, so that what
// they hold beyond the page is a few records, however large records
// written before the size limits are. A group of the maximum size is
// 2 MiB stored, so groups come one at a time.
const (
	userBatch  = 10
	groupBatch = 1
)

func (l listing[T]) page(params elimity.ListRequestParams, expr filter.Expression) (elimity.Page, error) {
	page := elimity.Page{Resources: []elimity.Resource{}}
	budget := l.pageBytes
	// add adds a resource to the page unless the page is full; the first
	// one always goes in, or a client could never get past it.
	add := func(it T) (bool, error) {
		res, err := l.resource(it)
		if err != nil {
			return false, err
		}
		n := resourceSize(res)
		if len(page.Resources) > 0 && n > budget {
			return false, nil
		}
		budget -= n
		page.Resources = append(page.Resources, res)
		return true, nil
	}
	if expr == nil {
		offset := max(params.StartIndex-1, 0)
		for {
			want := min(params.Count-len(page.Resources), l.batch)
			items, total, err := l.all(offset, max(want, 0))
			if err != nil {
				return elimity.Page{}, l.storeError(err)
			}
			page.TotalResults = total
			for _, it := range items {
				if ok, err := add(it); err != nil || !ok {
					return page, err
				}
			}
			if len(items) < want || want <= 0 {
				return page, nil
			}
			offset += len(items)
		}
	}

	cands, ok, err := l.candidates(expr)
	var se scimerrors.ScimError
	if errors.As(err, &se) {
		return elimity.Page{}, se
	}
	if err != nil {
		return elimity.Page{}, l.storeError(err)
	}
	var matched []string
	if ok {
		if len(cands) > l.most {
			return elimity.Page{}, tooMany(l.most)
		}
		ids := make([]string, 0, len(cands))
		for id := range cands {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			it, err := l.load(id)
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
				continue
			}
			if err != nil {
				return elimity.Page{}, l.storeError(err)
			}
			ok, err := l.matches(it, expr)
			if err != nil {
				return elimity.Page{}, l.storeError(err)
			}
			if ok {
				matched = append(matched, l.id(it))
			}
		}
	} else if matched, err = l.scan(expr); err != nil {
		return elimity.Page{}, err
	}
	from, to := window(len(matched), params.StartIndex, params.Count)
	page.TotalResults = len(matched)
	for _, id := range matched[from:to] {
		it, err := l.load(id)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			continue // deleted meanwhile
		}
		if err != nil {
			return elimity.Page{}, l.storeError(err)
		}
		if ok, err := add(it); err != nil {
			return elimity.Page{}, err
		} else if !ok {
			break
		}
	}
	return page, nil
}

// scan checks every resource of the organization against a filter the
// indexes cannot bound (ne, co, sw, pr, gt, not, meta.lastModified, …),
// reading batch records at a time in the store's order (by id). Its cost
// is bounded like an index's: an organization with more than most
// resources gets tooMany, and the IdP must narrow the filter with an
// indexed equality.
func (l listing[T]) scan(expr filter.Expression) ([]string, error) {
	_, total, err := l.all(0, 0)
	if err != nil {
		return nil, l.storeError(err)
	}
	if total > l.most {
		return nil, tooMany(l.most)
	}
	var matched []string
	for offset := 0; offset <= l.most; {
		items, _, err := l.all(offset, l.batch)
		if err != nil {
			return nil, l.storeError(err)
		}
		for _, it := range items {
			ok, err := l.matches(it, expr)
			if err != nil {
				return nil, l.storeError(err)
			}
			if ok {
				matched = append(matched, l.id(it))
			}
		}
		if len(items) < l.batch {
			break
		}
		offset += len(items)
	}
	return matched, nil
}

// resourceSize is about how many bytes a resource takes in a response:
// its attributes as JSON, and a margin for id, meta and schemas.
func resourceSize(res elimity.Resource) int {
	n := len(res.ID) + 300
	for k, v := range res.Attributes {
		if raw, ok := v.(json.RawMessage); ok {
			n += len(k) + len(raw) + 4
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			continue
		}
		n += len(k) + len(raw) + 4
	}
	return n
}

// ---- users ---------------------------------------------------------------

func (h *userHandler) list(r *http.Request, params elimity.ListRequestParams, p projection) (elimity.Page, error) {
	org := orgOf(r)
	st := h.srv.cfg.Store
	return listing[*store.User]{
		all: func(offset, count int) ([]*store.User, int, error) {
			return st.ListUsers(org, offset, count)
		},
		candidates: func(expr filter.Expression) (idSet, bool, error) {
			return h.candidates(org, expr)
		},
		load: func(id string) (*store.User, error) { return st.GetUser(org, id) },
		id:   func(u *store.User) string { return u.ID },
		matches: func(u *store.User, expr filter.Expression) (bool, error) {
			view := filterView(userAttributes(u), u.ID, u.ExternalID, u.Created, u.Updated, "User")
			return matches(expr, func(leaf filter.Expression) bool {
				if match, ok := userIdentityLeaf(leaf, u); ok {
					return match
				}
				sch, _, _ := leafSchema(leafAttribute(leaf), userFilterSchema, []schema.Schema{enterpriseSchema})
				if sch.ID != userFilterSchema.ID {
					// An extension's attributes live in the object under
					// its URN, where the library does not look.
					ext, _ := view[findKey(view, sch.ID)].(map[string]any)
					return passes(scimfilter.NewFilterValidator(asValuePath(leaf, sch), sch), ext)
				}
				return passes(scimfilter.NewFilterValidator(asValuePath(leaf, userFilterSchema), userFilterSchema), view)
			}), nil
		},
		resource:   func(u *store.User) (elimity.Resource, error) { return h.resource(u, p) },
		storeError: func(err error) error { return h.srv.storeError(err, "", "") },
		pageBytes:  h.srv.limits.MaxPageBytes,
		batch:      userBatch,
		most:       mostUserCandidates,
	}.page(params, filterOf(r.Context()))
}

// candidates returns, from the indexes, the IDs of a superset of the
// users expr can match; ok is false when the indexes cannot bound it.
func (h *userHandler) candidates(org string, expr filter.Expression) (idSet, bool, error) {
	st := h.srv.cfg.Store
	switch e := expr.(type) {
	case *filter.LogicalExpression:
		return combine(e, mostUserCandidates, func(x filter.Expression) (idSet, bool, error) { return h.candidates(org, x) })
	case *filter.ValuePath:
		// emails[value eq "…"] (with anything and-ed inside the brackets).
		if !strings.EqualFold(e.AttributePath.AttributeName, attrEmails) || !coreURI(e.AttributePath, userSchema.ID) {
			return nil, false, nil
		}
		if v, ok := valueEquality(e.ValueFilter); ok {
			return h.byEmail(org, v)
		}
		return nil, false, nil
	case *filter.AttributeExpression:
		v, ok := e.CompareValue.(string)
		if e.Operator != filter.EQ || !ok || !coreURI(e.AttributePath, userSchema.ID) {
			return nil, false, nil
		}
		name, sub := strings.ToLower(e.AttributePath.AttributeName), strings.ToLower(e.AttributePath.SubAttributeName())
		var u *store.User
		var err error
		switch {
		case name == "username" && sub == "":
			u, err = st.UserByUserName(org, v)
		case name == "externalid" && sub == "":
			u, err = st.UserByExternalID(org, v)
		case name == "id" && sub == "":
			return idSet{v: {}}, true, nil // read (or not found) later
		case name == "emails" && (sub == "value" || sub == ""):
			return h.byEmail(org, v)
		default:
			return nil, false, nil
		}
		return single(u, err, func(u *store.User) string { return u.ID })
	}
	return nil, false, nil
}

func (h *userHandler) byEmail(org, email string) (idSet, bool, error) {
	out := idSet{}
	if email == "" {
		return out, true, nil
	}
	ids, err := h.srv.cfg.Store.UserIDsByEmail(org, email)
	if err != nil {
		return nil, false, err
	}
	for _, id := range ids {
		out[id] = struct{}{}
	}
	return out, true, nil
}

// ---- groups --------------------------------------------------------------

func (h *groupHandler) list(r *http.Request, params elimity.ListRequestParams, p projection) (elimity.Page, error) {
	org := orgOf(r)
	st := h.srv.cfg.Store
	return listing[*store.Group]{
		all: func(offset, count int) ([]*store.Group, int, error) {
			return st.ListGroups(org, offset, count)
		},
		candidates: func(expr filter.Expression) (idSet, bool, error) {
			return h.candidates(org, expr)
		},
		load: func(id string) (*store.Group, error) { return st.GetGroup(org, id) },
		id:   func(g *store.Group) string { return g.ID },
		matches: func(g *store.Group, expr filter.Expression) (bool, error) {
			return h.matches(org, g, expr)
		},
		resource:   func(g *store.Group) (elimity.Resource, error) { return h.resource(g, p), nil },
		storeError: func(err error) error { return h.srv.storeError(err, "", "") },
		pageBytes:  h.srv.limits.MaxPageBytes,
		batch:      groupBatch,
		most:       mostGroupCandidates,
	}.page(params, filterOf(r.Context()))
}

// matches checks the whole filter on g. Membership tests (Entra ID asks
// `id eq "g" and members[value eq "u"]`) are one index read each instead
// of a walk through the member list.
func (h *groupHandler) matches(org string, g *store.Group, expr filter.Expression) (bool, error) {
	var views [2]map[string]any // without and with members
	var storeErr error
	ok := matches(expr, func(leaf filter.Expression) bool {
		if uid, ok := memberTest(leaf); ok {
			is, err := h.srv.cfg.Store.IsMember(org, g.ID, uid)
			if err != nil && storeErr == nil && !errors.Is(err, store.ErrInvalid) {
				storeErr = err
			}
			return is
		}
		if match, ok := groupIdentityLeaf(leaf, g); ok {
			return match
		}
		i, p := 0, newProjection(nil, []string{attrMembers})
		if strings.EqualFold(leafAttribute(leaf).AttributeName, attrMembers) {
			i, p = 1, projection{}
		}
		if views[i] == nil {
			views[i] = filterView(h.build(g, p, false).Attributes, g.ID, g.ExternalID, g.Created, g.Updated, "Group")
		}
		return passes(scimfilter.NewFilterValidator(asValuePath(leaf, groupFilterSchema), groupFilterSchema), views[i])
	})
	return ok, storeErr
}

// leafAttribute is the attribute a leaf of a filter tests.
func leafAttribute(leaf filter.Expression) filter.AttributePath {
	switch e := leaf.(type) {
	case *filter.ValuePath:
		return e.AttributePath
	case *filter.AttributeExpression:
		return e.AttributePath
	}
	return filter.AttributePath{}
}

// memberTest recognises members[value eq "u"] and members.value eq "u".
func memberTest(leaf filter.Expression) (string, bool) {
	switch e := leaf.(type) {
	case *filter.ValuePath:
		if strings.EqualFold(e.AttributePath.AttributeName, attrMembers) && coreURI(e.AttributePath, groupSchema.ID) {
			return valueEquality(e.ValueFilter)
		}
	case *filter.AttributeExpression:
		v, ok := e.CompareValue.(string)
		if ok && e.Operator == filter.EQ && strings.EqualFold(e.AttributePath.AttributeName, attrMembers) &&
			strings.EqualFold(e.AttributePath.SubAttributeName(), "value") && coreURI(e.AttributePath, groupSchema.ID) {
			return v, true
		}
	}
	return "", false
}

func (h *groupHandler) candidates(org string, expr filter.Expression) (idSet, bool, error) {
	st := h.srv.cfg.Store
	if e, ok := expr.(*filter.LogicalExpression); ok {
		return combine(e, mostGroupCandidates, func(x filter.Expression) (idSet, bool, error) { return h.candidates(org, x) })
	}
	if uid, ok := memberTest(expr); ok {
		out := idSet{}
		if uid == "" {
			return out, true, nil
		}
		ids, err := st.GroupsOfUser(org, uid)
		if err != nil && !errors.Is(err, store.ErrInvalid) {
			return nil, false, err
		}
		for _, id := range ids {
			out[id] = struct{}{}
		}
		return out, true, nil
	}
	e, ok := expr.(*filter.AttributeExpression)
	if !ok {
		return nil, false, nil
	}
	v, ok := e.CompareValue.(string)
	if e.Operator != filter.EQ || !ok || e.AttributePath.SubAttribute != nil || !coreURI(e.AttributePath, groupSchema.ID) {
		return nil, false, nil
	}
	var id string
	var err error
	switch strings.ToLower(e.AttributePath.AttributeName) {
	case "displayname":
		// Names may be shared; more than the bound is tooMany later.
		ids, err := st.GroupIDsByDisplayName(org, v, mostGroupCandidates+1)
		if err != nil && !errors.Is(err, store.ErrInvalid) {
			return nil, false, err
		}
		out := idSet{}
		for _, id := range ids {
			out[id] = struct{}{}
		}
		return out, true, nil
	case "externalid":
		id, err = st.GroupIDByExternalID(org, v)
	case "id":
		id = v
	default:
		return nil, false, nil
	}
	return single(id, err, func(id string) string { return id })
}

// ---- shared --------------------------------------------------------------

// matches evaluates the boolean structure of expr, leaving attribute
// expressions and value paths to leaf.
func matches(expr filter.Expression, leaf func(filter.Expression) bool) bool {
	switch e := expr.(type) {
	case *filter.LogicalExpression:
		if e.Operator == filter.AND {
			return matches(e.Left, leaf) && matches(e.Right, leaf)
		}
		return matches(e.Left, leaf) || matches(e.Right, leaf)
	case *filter.NotExpression:
		return !matches(e.Expression, leaf)
	}
	return leaf(expr)
}

// combine bounds an and/or from its sides: an "and" by either side the
// indexes can bound, an "or" by the union of both, if both can be. A
// union past most is refused as it grows (an or-chain of a filter's
// length could otherwise gather far more).
func combine(e *filter.LogicalExpression, most int, side func(filter.Expression) (idSet, bool, error)) (idSet, bool, error) {
	l, lok, err := side(e.Left)
	if err != nil {
		return nil, false, err
	}
	if e.Operator == filter.AND && lok {
		return l, true, nil
	}
	r, rok, err := side(e.Right)
	if err != nil {
		return nil, false, err
	}
	if e.Operator == filter.AND {
		return r, rok, nil
	}
	if !lok || !rok {
		return nil, false, nil
	}
	for k := range r {
		l[k] = struct{}{}
	}
	if len(l) > most {
		return nil, false, tooMany(most)
	}
	return l, true, nil
}

// single turns a look-up by one index into a candidate set: not found
// (or not a possible key) is an empty set.
func single[T any](v T, err error, id func(T) string) (idSet, bool, error) {
	out := idSet{}
	switch {
	case err == nil:
		out[id(v)] = struct{}{}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
	default:
		return nil, false, err
	}
	return out, true, nil
}

// valueEquality recognises a value filter `value eq "x"`, alone or
// and-ed with other conditions.
func valueEquality(expr filter.Expression) (string, bool) {
	switch e := expr.(type) {
	case *filter.AttributeExpression:
		v, ok := e.CompareValue.(string)
		if ok && e.Operator == filter.EQ && e.AttributePath.SubAttribute == nil && strings.EqualFold(e.AttributePath.AttributeName, "value") {
			return v, true
		}
	case *filter.LogicalExpression:
		if e.Operator == filter.AND {
			if v, ok := valueEquality(e.Left); ok {
				return v, true
			}
			return valueEquality(e.Right)
		}
	}
	return "", false
}

// asValuePath rewrites `emails.value eq "x"` on a multi-valued attribute
// as the equivalent `emails[value eq "x"]` (RFC 7644 §3.4.2.2: the
// expression holds when any value matches), which is the form the
// library's filter evaluates; it fails the first form on multi-valued
// attributes.
func asValuePath(leaf filter.Expression, s schema.Schema) filter.Expression {
	e, ok := leaf.(*filter.AttributeExpression)
	if !ok || e.AttributePath.SubAttribute == nil || !coreURI(e.AttributePath, s.ID) {
		return leaf
	}
	attr, ok := s.Attributes.ContainsAttribute(e.AttributePath.AttributeName)
	if !ok || !attr.MultiValued() {
		return leaf
	}
	return &filter.ValuePath{
		AttributePath: filter.AttributePath{URIPrefix: e.AttributePath.URIPrefix, AttributeName: e.AttributePath.AttributeName},
		ValueFilter: &filter.AttributeExpression{
			AttributePath: filter.AttributePath{AttributeName: e.AttributePath.SubAttributeName()},
			Operator:      e.Operator,
			CompareValue:  e.CompareValue,
		},
	}
}

// coreURI tells an attribute path without a URN or with the core schema's.
func coreURI(p filter.AttributePath, core string) bool {
	uri := p.URI()
	return uri == "" || strings.EqualFold(uri, core)
}
