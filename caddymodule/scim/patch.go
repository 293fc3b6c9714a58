package scim

import (
	"reflect"
	"sort"
	"strings"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	scimfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/schema"
	"github.com/scim2/filter-parser/v2"

	"github.com/ssogate/ssogate/identity"
)

// The library parses and validates PATCH operations (RFC 7644 §3.5.2) and
// leaves applying them to the handler. applyPatch applies them to a
// resource's representation (a map of attribute name to value, as the
// library produces and the store keeps), which the handler then stores as
// a whole. Groups' members are handled on ID sets instead (groups.go), so
// that large groups stay cheap.

// withExternalID adds the common externalId attribute to a core schema,
// as the library does when it validates requests.
func withExternalID(s schema.Schema) schema.Schema {
	attrs := make(schema.Attributes, len(s.Attributes), len(s.Attributes)+1)
	copy(attrs, s.Attributes)
	s.Attributes = append(attrs, schema.SimpleCoreAttribute(schema.SimpleStringParams(schema.StringParams{
		CaseExact: true,
		Name:      attrExternalID,
	})))
	return s
}

var (
	userPatchSchema  = withExternalID(userSchema)
	groupPatchSchema = withExternalID(groupSchema)
)

// applyPatch applies ops, in order, to rep.
func applyPatch(rep map[string]any, ops []elimity.PatchOperation, core schema.Schema, exts ...schema.Schema) error {
	for _, op := range ops {
		if op.Path != nil {
			if err := applyOp(rep, op.Op, *op.Path, op.Value, core, exts); err != nil {
				return err
			}
			continue
		}
		// No path: the value is a set of attributes (or of attribute
		// paths, as Entra ID sends them) to add or replace.
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
			if ext := extension(exts, k); ext != nil {
				inner, ok := values[k].(map[string]any)
				if !ok {
					return badValue("The value of " + k + " must be an object.")
				}
				for ik, iv := range inner {
					uri := ext.ID
					p := filter.Path{AttributePath: filter.AttributePath{URIPrefix: &uri, AttributeName: ik}}
					if err := applyOp(rep, op.Op, p, iv, core, exts); err != nil {
						return err
					}
				}
				continue
			}
			p, err := filter.ParsePath([]byte(k))
			if err != nil {
				return scimerrors.ScimErrorInvalidPath
			}
			if err := applyOp(rep, op.Op, p, values[k], core, exts); err != nil {
				return err
			}
		}
	}
	return nil
}

func extension(exts []schema.Schema, uri string) *schema.Schema {
	for i := range exts {
		if strings.EqualFold(exts[i].ID, uri) {
			return &exts[i]
		}
	}
	return nil
}

// applyOp applies one operation at path p.
func applyOp(rep map[string]any, op string, p filter.Path, value any, core schema.Schema, exts []schema.Schema) error {
	op = strings.ToLower(op)
	sch, holder := core, rep
	if uri := p.AttributePath.URI(); uri != "" && !strings.EqualFold(uri, core.ID) {
		ext := extension(exts, uri)
		if ext == nil {
			return scimerrors.ScimErrorInvalidPath
		}
		sch = *ext
		m, _ := rep[ext.ID].(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		holder = m
		defer func() {
			if len(m) > 0 {
				rep[ext.ID] = m
			} else {
				delete(rep, ext.ID)
			}
		}()
	}
	attr, ok := sch.Attributes.ContainsAttribute(p.AttributePath.AttributeName)
	if !ok {
		return scimerrors.ScimErrorInvalidPath
	}
	if attr.Mutability() == "readOnly" {
		return scimerrors.ScimErrorMutability
	}
	switch {
	case p.ValueExpression != nil:
		return applyFiltered(holder, attr, op, p.ValueExpression, p.SubAttributeName(), value)
	case p.AttributePath.SubAttributeName() != "":
		return applySub(holder, attr, op, p.AttributePath.SubAttributeName(), value)
	default:
		return applyWhole(holder, attr, op, value)
	}
}

// applyWhole targets an attribute as a whole.
func applyWhole(holder map[string]any, attr schema.CoreAttribute, op string, value any) error {
	name := attr.Name()
	switch {
	case op == elimity.PatchOperationRemove && attr.MultiValued() && value != nil:
		// Remove the listed values only (Entra ID removes members so).
		list := asList(holder[name])
		kept := list[:0:0]
		for _, el := range list {
			if !containsValue(attr, asList(value), el) {
				kept = append(kept, el)
			}
		}
		setList(holder, name, kept)
	case op == elimity.PatchOperationRemove:
		delete(holder, name)
	case attr.MultiValued() && op == elimity.PatchOperationAdd:
		list := asList(holder[name])
		for _, v := range asList(value) {
			i := indexOfValue(attr, list, v)
			if i >= 0 {
				list[i] = v // the same value again: take its new details
			} else {
				list = append(list, v)
				i = len(list) - 1
			}
			if isPrimary(v) {
				clearPrimary(list, i)
			}
		}
		setList(holder, name, list)
	case attr.MultiValued():
		list := asList(value)
		setList(holder, name, list)
	case attr.AttributeType() == "complex":
		// Sub-attributes not given are left as they are (RFC 7644
		// §3.5.2.1 and §3.5.2.3).
		in, ok := value.(map[string]any)
		if !ok {
			return scimerrors.ScimErrorInvalidValue
		}
		cur, _ := holder[name].(map[string]any)
		cur = copyMap(cur)
		for k, v := range in {
			cur[k] = v
		}
		holder[name] = cur
	default:
		holder[name] = value
	}
	return nil
}

// applySub targets a sub-attribute, like name.givenName.
func applySub(holder map[string]any, attr schema.CoreAttribute, op, sub string, value any) error {
	name := attr.Name()
	subAttr, ok := attr.SubAttributes().ContainsAttribute(sub)
	if !ok {
		return scimerrors.ScimErrorInvalidPath
	}
	sub = subAttr.Name()
	set := func(m map[string]any) {
		if op == elimity.PatchOperationRemove {
			delete(m, sub)
		} else {
			m[sub] = value
		}
	}
	if !attr.MultiValued() {
		m, _ := holder[name].(map[string]any)
		m = copyMap(m)
		set(m)
		if len(m) == 0 {
			delete(holder, name)
		} else {
			holder[name] = m
		}
		return nil
	}
	// A sub-attribute of a multi-valued attribute without a filter means
	// that sub-attribute of every value.
	list := asList(holder[name])
	for i, el := range list {
		if m, ok := el.(map[string]any); ok {
			m = copyMap(m)
			set(m)
			list[i] = m
		}
	}
	setList(holder, name, list)
	return nil
}

// applyFiltered targets the values of a multi-valued attribute that match
// a filter, like emails[type eq "work"].value or members[value eq "…"].
func applyFiltered(holder map[string]any, attr schema.CoreAttribute, op string, expr filter.Expression, sub string, value any) error {
	name := attr.Name()
	if !attr.MultiValued() {
		return scimerrors.ScimErrorInvalidPath
	}
	if sub != "" {
		subAttr, ok := attr.SubAttributes().ContainsAttribute(sub)
		if !ok {
			return scimerrors.ScimErrorInvalidPath
		}
		sub = subAttr.Name()
	}
	v := scimfilter.NewFilterValidator(expr, schema.Schema{Attributes: scimfilter.MultiValuedFilterAttributes(attr)})
	list := asList(holder[name])
	var hits []int
	for i, el := range list {
		if m, ok := el.(map[string]any); ok && passes(v, m) {
			hits = append(hits, i)
		}
	}

	if op == elimity.PatchOperationRemove {
		if sub != "" {
			kept := list[:0:0]
			for i, el := range list {
				if containsInt(hits, i) {
					m := copyMap(el.(map[string]any))
					delete(m, sub)
					// Entra ID removes a phone number as
					// phoneNumbers[type eq "mobile"].value: what is
					// left without a value is no value at all.
					_, valued := attr.SubAttributes().ContainsAttribute("value")
					if _, hasValue := m["value"]; valued && !hasValue {
						continue
					}
					el = m
				}
				kept = append(kept, el)
			}
			setList(holder, name, kept)
			return nil
		}
		kept := list[:0:0]
		for i, el := range list {
			if !containsInt(hits, i) {
				kept = append(kept, el)
			}
		}
		setList(holder, name, kept)
		return nil
	}

	if len(hits) == 0 {
		// Nothing matches: Entra ID expects `emails[type eq "work"].value`
		// to create the work address, so a filter that is a plain
		// equality (or a conjunction of them) becomes the new value.
		el, ok := elementFromFilter(attr, expr)
		if !ok {
			return scimerrors.ScimErrorNoTarget
		}
		if sub != "" {
			el[sub] = value
		} else if in, ok := value.(map[string]any); ok {
			for k, v := range in {
				el[k] = v
			}
		} else {
			return scimerrors.ScimErrorInvalidValue
		}
		list = append(list, el)
		if isPrimary(el) {
			clearPrimary(list, len(list)-1)
		}
		setList(holder, name, list)
		return nil
	}
	for _, i := range hits {
		m := copyMap(list[i].(map[string]any))
		switch {
		case sub != "":
			m[sub] = value
		case op == elimity.PatchOperationReplace:
			in, ok := value.(map[string]any)
			if !ok {
				return scimerrors.ScimErrorInvalidValue
			}
			m = copyMap(in)
		default:
			in, ok := value.(map[string]any)
			if !ok {
				return scimerrors.ScimErrorInvalidValue
			}
			for k, v := range in {
				m[k] = v
			}
		}
		list[i] = m
		if isPrimary(m) {
			clearPrimary(list, i)
		}
	}
	setList(holder, name, list)
	return nil
}

// elementFromFilter builds the value a filter of equalities describes.
func elementFromFilter(attr schema.CoreAttribute, expr filter.Expression) (map[string]any, bool) {
	switch e := expr.(type) {
	case *filter.AttributeExpression:
		if e.Operator != filter.EQ || e.AttributePath.SubAttribute != nil || e.AttributePath.URIPrefix != nil {
			return nil, false
		}
		sub, ok := attr.SubAttributes().ContainsAttribute(e.AttributePath.AttributeName)
		if !ok {
			return nil, false
		}
		switch e.CompareValue.(type) {
		case string, bool:
			return map[string]any{sub.Name(): e.CompareValue}, true
		}
	case *filter.LogicalExpression:
		if e.Operator != filter.AND {
			return nil, false
		}
		l, ok := elementFromFilter(attr, e.Left)
		if !ok {
			return nil, false
		}
		r, ok := elementFromFilter(attr, e.Right)
		if !ok {
			return nil, false
		}
		for k, v := range r {
			l[k] = v
		}
		return l, true
	}
	return nil, false
}

// passes runs a library filter on one value. The library panics on values
// of unexpected types; that is a non-match here, not a crash.
func passes(v scimfilter.Validator, m map[string]any) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return v.PassesFilter(m) == nil
}

func asList(v any) []any {
	switch v := v.(type) {
	case []any:
		return append([]any(nil), v...)
	case nil:
		return nil
	default:
		return []any{v}
	}
}

func setList(holder map[string]any, name string, list []any) {
	if len(list) == 0 {
		delete(holder, name)
		return
	}
	holder[name] = list
}

// indexOfValue finds v in list: complex values with a "value"
// sub-attribute are the same value when those are equal (respecting the
// sub-attribute's case sensitivity), others when they are equal.
func indexOfValue(attr schema.CoreAttribute, list []any, v any) int {
	vm, isMap := v.(map[string]any)
	sub, hasValue := attr.SubAttributes().ContainsAttribute("value")
	for i, el := range list {
		em, ok := el.(map[string]any)
		if isMap && ok && hasValue {
			a, _ := vm["value"].(string)
			b, _ := em["value"].(string)
			if a != "" && (a == b || (!sub.CaseExact() && identity.EqualFold(a, b))) {
				return i
			}
			continue
		}
		if reflect.DeepEqual(el, v) {
			return i
		}
	}
	return -1
}

func containsValue(attr schema.CoreAttribute, values []any, el any) bool {
	for _, v := range values {
		if indexOfValue(attr, []any{el}, v) == 0 {
			return true
		}
	}
	return false
}

func isPrimary(v any) bool {
	m, _ := v.(map[string]any)
	p, _ := m["primary"].(bool)
	return p
}

// clearPrimary unsets primary on every value but list[keep]: at most one
// value may be primary (RFC 7643 §2.4).
func clearPrimary(list []any, keep int) {
	for i, el := range list {
		m, ok := el.(map[string]any)
		if i == keep || !ok || !isPrimary(m) {
			continue
		}
		m = copyMap(m)
		delete(m, "primary")
		list[i] = m
	}
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
