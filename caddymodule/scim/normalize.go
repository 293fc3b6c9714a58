package scim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/elimity-com/scim/schema"
	"github.com/scim2/filter-parser/v2"
)

// normalizeRequest rewrites the parts of a POST, PUT or PATCH body that
// Okta and Entra ID send in shapes the library's validation refuses, so
// that the library can validate the rest as usual:
//
//   - Booleans sent as strings: Entra ID's PATCH sets active to "False"
//     (and sometimes primary to "True"). Any attribute the schema types as
//     boolean is converted when its string parses as one. (The library's
//     own switch for this, schema.SetAllowStringValues, is process-wide
//     and loosens every type; this is narrower.)
//   - A complex single-valued attribute given as a bare string or as a
//     one-element array: Entra ID sets the enterprise extension's manager
//     with "value": "<id>" or "value": [{"$ref": null, "value": "<id>"}]
//     instead of {"value": "<id>"}.
//   - Extension attributes named without their schema URN: Microsoft's
//     documented manager update uses "path": "manager". An attribute that
//     only an extension defines gets the extension's URN prefixed (the
//     library validates such a path but then cannot apply it).
//
// Operation names in any letter case, the Operations key's case, and the
// id Okta puts into path-less PATCH values are already handled by the
// library. Bodies that are not JSON objects are passed on untouched for
// the library to refuse.
func normalizeRequest(method, sub string, body []byte) []byte {
	var core schema.Schema
	var exts []schema.Schema
	switch {
	case sub == "/v2/Users" || strings.HasPrefix(sub, "/v2/Users/"):
		core, exts = userPatchSchema, []schema.Schema{enterpriseSchema}
	default:
		// Groups have no booleans, no complex single-valued attributes
		// and no extensions: nothing to fix, and membership updates are
		// the largest bodies, not worth decoding for nothing.
		return body
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil || m == nil {
		return body
	}
	changed := false
	switch method {
	case http.MethodPost, http.MethodPut:
		changed = fixObject(m, core.Attributes, exts)
	case http.MethodPatch:
		ops, _ := m[findKey(m, "Operations")].([]any)
		for _, o := range ops {
			op, ok := o.(map[string]any)
			if !ok {
				continue
			}
			vk := findKey(op, "value")
			pk := findKey(op, "path")
			path, _ := op[pk].(string)
			// RFC 7644 §3.5.2.3: replacing with null clears the
			// attribute, which the library only does as a remove.
			if ok := findKey(op, "op"); vk != "" && op[vk] == nil && strings.TrimSpace(path) != "" {
				if name, _ := op[ok].(string); strings.EqualFold(name, "replace") {
					op[ok] = "remove"
					delete(op, vk)
					changed = true
					continue
				}
			}
			if vk == "" {
				continue
			}
			if q := qualify(path, core, exts); q != path {
				op[pk], path, changed = q, q, true
			}
			if strings.TrimSpace(path) == "" {
				if values, ok := op[vk].(map[string]any); ok {
					changed = fixPathValues(values, core, exts) || changed
				}
				continue
			}
			attr, element, ok := resolveTarget(path, core, exts)
			if !ok {
				continue
			}
			v, ch := fixValue(attr, element, op[vk])
			op[vk] = v
			changed = changed || ch
		}
	}
	if !changed {
		return body
	}
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return out
}

// fixObject fixes a resource (or extension) object's attributes.
func fixObject(m map[string]any, attrs schema.Attributes, exts []schema.Schema) bool {
	changed := false
	for k, v := range m {
		if ext := extension(exts, k); ext != nil {
			if em, ok := v.(map[string]any); ok {
				changed = fixObject(em, ext.Attributes, nil) || changed
			}
			continue
		}
		attr, ok := attrs.ContainsAttribute(k)
		if !ok {
			continue
		}
		nv, ch := fixValue(attr, false, v)
		m[k] = nv
		changed = changed || ch
	}
	return changed
}

// fixPathValues fixes a path-less PATCH value, whose keys are attribute
// paths (or extension URNs holding objects).
func fixPathValues(values map[string]any, core schema.Schema, exts []schema.Schema) bool {
	changed := false
	for k, v := range values {
		if q := qualify(k, core, exts); q != k {
			if _, taken := values[q]; !taken {
				delete(values, k)
				values[q], k, changed = v, q, true
			}
		}
		if ext := extension(exts, k); ext != nil {
			if em, ok := v.(map[string]any); ok {
				changed = fixObject(em, ext.Attributes, nil) || changed
			}
			continue
		}
		attr, element, ok := resolveTarget(k, core, exts)
		if !ok {
			continue
		}
		nv, ch := fixValue(attr, element, v)
		values[k] = nv
		changed = changed || ch
	}
	return changed
}

// qualify prefixes a path whose attribute only an extension defines with
// that extension's URN.
func qualify(path string, core schema.Schema, exts []schema.Schema) string {
	p, err := filter.ParsePath([]byte(path))
	if err != nil || p.AttributePath.URIPrefix != nil {
		return path
	}
	if _, ok := core.Attributes.ContainsAttribute(p.AttributePath.AttributeName); ok {
		return path
	}
	for _, ext := range exts {
		if _, ok := ext.Attributes.ContainsAttribute(p.AttributePath.AttributeName); ok {
			return ext.ID + ":" + path
		}
	}
	return path
}

// resolveTarget finds the attribute a PATCH path designates. element is
// true when the path selects values of a multi-valued attribute with a
// filter (emails[type eq "work"]): the value is then one element.
func resolveTarget(path string, core schema.Schema, exts []schema.Schema) (schema.CoreAttribute, bool, bool) {
	p, err := filter.ParsePath([]byte(path))
	if err != nil {
		return schema.CoreAttribute{}, false, false
	}
	sch := core
	if uri := p.AttributePath.URI(); uri != "" && !strings.EqualFold(uri, core.ID) {
		ext := extension(exts, uri)
		if ext == nil {
			return schema.CoreAttribute{}, false, false
		}
		sch = *ext
	}
	attr, ok := sch.Attributes.ContainsAttribute(p.AttributePath.AttributeName)
	if !ok {
		return schema.CoreAttribute{}, false, false
	}
	sub := p.AttributePath.SubAttributeName()
	if p.ValueExpression != nil {
		if p.SubAttribute == nil {
			return attr, true, true
		}
		sub = p.SubAttributeName()
	}
	if sub != "" {
		subAttr, ok := attr.SubAttributes().ContainsAttribute(sub)
		return subAttr, false, ok
	}
	return attr, false, true
}

// fixValue fixes v as a value of attr (one element of it if element).
func fixValue(attr schema.CoreAttribute, element bool, v any) (any, bool) {
	switch attr.AttributeType() {
	case "boolean":
		if s, ok := v.(string); ok {
			if b, err := strconv.ParseBool(strings.TrimSpace(s)); err == nil {
				return b, true
			}
		}
		if list, ok := v.([]any); ok && attr.MultiValued() && !element {
			changed := false
			for i, el := range list {
				if s, ok := el.(string); ok {
					if b, err := strconv.ParseBool(strings.TrimSpace(s)); err == nil {
						list[i], changed = b, true
					}
				}
			}
			return list, changed
		}
	case "complex":
		subs := attr.SubAttributes()
		if list, ok := v.([]any); ok && attr.MultiValued() && !element {
			changed := false
			for _, el := range list {
				if m, ok := el.(map[string]any); ok {
					changed = fixObject(m, subs, nil) || changed
				}
			}
			return list, changed
		}
		if m, ok := v.(map[string]any); ok {
			return m, fixObject(m, subs, nil)
		}
		if list, ok := v.([]any); ok && len(list) == 1 && !attr.MultiValued() {
			if m, ok := list[0].(map[string]any); ok {
				fixObject(m, subs, nil)
				return m, true
			}
		}
		if s, ok := v.(string); ok && !attr.MultiValued() {
			if _, hasValue := subs.ContainsAttribute("value"); hasValue {
				return map[string]any{"value": s}, true
			}
		}
	}
	return v, false
}
