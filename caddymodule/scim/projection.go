package scim

import (
	"net/http"
	"strings"

	"github.com/scim2/filter-parser/v2"
)

// projection is what the "attributes" and "excludedAttributes" parameters
// (RFC 7644 §3.4.2.5) ask to be returned. The library leaves them to the
// handlers; Entra ID relies on excludedAttributes=members to keep group
// look-ups small. id, schemas and meta are always returned (the library
// adds them).
type projection struct {
	only, exclude []attrRef
}

// attrRef is one attribute named in a parameter: as written (it may be a
// whole extension URN) and parsed.
type attrRef struct {
	raw  string
	path filter.AttributePath
}

func projectionOf(r *http.Request) projection {
	q := r.URL.Query()
	return newProjection(splitList(q.Get("attributes")), splitList(q.Get("excludedAttributes")))
}

func newProjection(only, exclude []string) projection {
	return projection{only: parseRefs(only), exclude: parseRefs(exclude)}
}

func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func parseRefs(names []string) []attrRef {
	var refs []attrRef
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		ref := attrRef{raw: n}
		if p, err := filter.ParseAttrPath([]byte(n)); err == nil {
			ref.path = p
		} else {
			ref.path = filter.AttributePath{AttributeName: n}
		}
		refs = append(refs, ref)
	}
	return refs
}

// wants tells whether the top-level attribute name is to be returned.
func (p projection) wants(name string) bool {
	if len(p.only) > 0 {
		found := false
		for _, ref := range p.only {
			if topLevel(ref) && strings.EqualFold(ref.path.AttributeName, name) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for _, ref := range p.exclude {
		if topLevel(ref) && ref.path.SubAttribute == nil && strings.EqualFold(ref.path.AttributeName, name) {
			return false
		}
	}
	return true
}

// subAttributes tells whether the parameters name sub-attributes of the
// top-level attribute name (members.value), which then must be built as
// values the projection can look into.
func (p projection) subAttributes(name string) bool {
	for _, refs := range [][]attrRef{p.only, p.exclude} {
		for _, ref := range refs {
			if topLevel(ref) && ref.path.SubAttribute != nil && strings.EqualFold(ref.path.AttributeName, name) {
				return true
			}
		}
	}
	return false
}

// topLevel tells a reference to a core attribute (no URN or the core
// schema's).
func topLevel(ref attrRef) bool {
	uri := ref.path.URI()
	return uri == "" || strings.HasPrefix(uri, "urn:ietf:params:scim:schemas:core:")
}

// apply returns the attributes to send. a is not modified (nested values
// it shares with the stored record are copied before they change).
func (p projection) apply(a map[string]any) map[string]any {
	if len(p.only) == 0 && len(p.exclude) == 0 {
		return a
	}
	out := make(map[string]any, len(a))
	if len(p.only) == 0 {
		for k, v := range a {
			out[k] = v
		}
	} else {
		for _, ref := range p.only {
			copyRef(out, a, ref)
		}
	}
	for _, ref := range p.exclude {
		removeRef(out, ref)
	}
	return out
}

// container finds the map ref's attribute lives in: the resource itself,
// or the extension object its URN names. create makes a (copied) extension
// object in dst when needed.
func container(m map[string]any, ref attrRef) (map[string]any, string, bool) {
	if k := findKey(m, ref.raw); k != "" {
		return m, k, true // a whole extension, or a plain attribute
	}
	if !topLevel(ref) {
		ext := findKey(m, ref.path.URI())
		em, ok := m[ext].(map[string]any)
		if ext == "" || !ok {
			return nil, "", false
		}
		k := findKey(em, ref.path.AttributeName)
		return em, k, k != ""
	}
	k := findKey(m, ref.path.AttributeName)
	return m, k, k != ""
}

func copyRef(dst, src map[string]any, ref attrRef) {
	from, k, ok := container(src, ref)
	if !ok {
		return
	}
	to := dst
	if !topLevel(ref) && findKey(src, ref.raw) == "" {
		ext := findKey(src, ref.path.URI())
		em, _ := dst[ext].(map[string]any)
		if em == nil {
			em = map[string]any{}
			dst[ext] = em
		}
		to = em
	}
	if ref.path.SubAttribute == nil || findKey(src, ref.raw) != "" {
		to[k] = from[k]
		return
	}
	sub := ref.path.SubAttributeName()
	switch v := from[k].(type) {
	case map[string]any:
		have, _ := to[k].(map[string]any)
		if have == nil {
			have = map[string]any{}
		}
		if sk := findKey(v, sub); sk != "" {
			have[sk] = v[sk]
		}
		to[k] = have
	case []any:
		list := make([]any, 0, len(v))
		for _, el := range v {
			if em, ok := el.(map[string]any); ok {
				if sk := findKey(em, sub); sk != "" {
					list = append(list, map[string]any{sk: em[sk]})
				}
			}
		}
		to[k] = list
	}
}

func removeRef(m map[string]any, ref attrRef) {
	if k := findKey(m, ref.raw); k != "" {
		delete(m, k)
		return
	}
	target := m
	ext := ""
	if !topLevel(ref) {
		ext = findKey(m, ref.path.URI())
		em, ok := m[ext].(map[string]any)
		if ext == "" || !ok {
			return
		}
		target = copyMap(em)
		m[ext] = target
	}
	k := findKey(target, ref.path.AttributeName)
	if k == "" {
		return
	}
	if ref.path.SubAttribute == nil {
		delete(target, k)
	} else {
		sub := ref.path.SubAttributeName()
		switch v := target[k].(type) {
		case map[string]any:
			c := copyMap(v)
			delete(c, findKey(c, sub))
			target[k] = c
		case []any:
			list := make([]any, len(v))
			for i, el := range v {
				if em, ok := el.(map[string]any); ok {
					c := copyMap(em)
					delete(c, findKey(c, sub))
					el = c
				}
				list[i] = el
			}
			target[k] = list
		}
	}
	if ext != "" && len(target) == 0 {
		delete(m, ext)
	}
}

// findKey returns the key of m equal to name ignoring case (attribute
// names are case-insensitive), or "".
func findKey(m map[string]any, name string) string {
	if _, ok := m[name]; ok {
		return name
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return ""
}

func copyMap(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
