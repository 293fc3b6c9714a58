package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
	scimfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/schema"
	"github.com/scim2/filter-parser/v2"
)

// List filters are parsed and validated here rather than by the library:
// its validator checks a whole filter against one schema at a time, so a
// filter naming a core and an extension attribute (`userName eq "a" and
// urn:…:enterprise:2.0:User:department eq "b"`) fails both ("the uri does
// not match the schema id"), and it cannot read Entra ID's
// `emails[type eq "work"].value eq "x"`. The filter is taken out of the
// request before the library sees it and handed to the list handlers in
// the context; each leaf is validated against the one schema it names.

// filterKey carries a list request's parsed filter to the handlers.
type filterKey struct{}

// filterOf returns the filter ServeHTTP parsed for the request, or nil.
func filterOf(ctx context.Context) filter.Expression {
	e, _ := ctx.Value(filterKey{}).(filter.Expression)
	return e
}

// resourceSchemas returns the core schema (with the common attributes)
// and extensions a list endpoint filters on; ok is false for other
// paths.
func resourceSchemas(sub string) (core schema.Schema, exts []schema.Schema, ok bool) {
	switch sub {
	case "/v2/Users", "/v2/Users/.search":
		return userFilterSchema, []schema.Schema{enterpriseSchema}, true
	case "/v2/Groups", "/v2/Groups/.search":
		return groupFilterSchema, nil, true
	}
	return schema.Schema{}, nil, false
}

// parseFilter normalises, bounds, parses and validates a list filter.
func (l Limits) parseFilter(raw string, core schema.Schema, exts []schema.Schema) (filter.Expression, error) {
	s := normalizeFilter(raw)
	// The rewrite moves text into brackets: the result is held to the
	// same caps.
	if err := l.checkFilter(s); err != nil {
		return nil, err
	}
	expr, err := filter.ParseFilter([]byte(s))
	if err != nil {
		return nil, invalidFilter("The filter does not parse: " + err.Error())
	}
	if err := validateFilter(expr, core, exts); err != nil {
		return nil, err
	}
	return expr, nil
}

func invalidFilter(detail string) scimerrors.ScimError {
	e := scimerrors.ScimErrorInvalidFilter
	e.Detail = detail
	return e
}

// validateFilter checks every leaf against the schema its attribute path
// names (the core schema when it names none and the core has the
// attribute, else the extension that has it).
func validateFilter(expr filter.Expression, core schema.Schema, exts []schema.Schema) error {
	switch e := expr.(type) {
	case *filter.LogicalExpression:
		if err := validateFilter(e.Left, core, exts); err != nil {
			return err
		}
		return validateFilter(e.Right, core, exts)
	case *filter.NotExpression:
		return validateFilter(e.Expression, core, exts)
	case *filter.ValuePath, *filter.AttributeExpression:
		p := leafAttribute(expr)
		sch, attr, ok := leafSchema(p, core, exts)
		if !ok {
			return invalidFilter(fmt.Sprintf("%q is not an attribute that can be filtered on.", p.String()))
		}
		if sch.ID == userSchema.ID && (strings.EqualFold(attr.Name(), attrGroups) || strings.EqualFold(attr.Name(), attrPassword)) {
			// groups is computed per user when returned, and passwords
			// are never kept: neither can be matched.
			return invalidFilter(fmt.Sprintf("Users cannot be filtered on %s; for the members of a group, filter /Groups on members.value.", attr.Name()))
		}
		if vp, isVP := expr.(*filter.ValuePath); isVP && !attr.MultiValued() {
			return invalidFilter(fmt.Sprintf("%q is not multi-valued; brackets select values of multi-valued attributes.", vp.AttributePath.String()))
		}
		if err := scimfilter.NewFilterValidator(expr, sch).Validate(); err != nil {
			return invalidFilter("The filter is not valid: " + err.Error())
		}
	default:
		return invalidFilter("The filter is not valid.")
	}
	return nil
}

// leafSchema finds the schema and attribute an attribute path names.
func leafSchema(p filter.AttributePath, core schema.Schema, exts []schema.Schema) (schema.Schema, schema.CoreAttribute, bool) {
	uri := p.URI()
	for _, s := range append([]schema.Schema{core}, exts...) {
		if uri != "" && !strings.EqualFold(uri, s.ID) {
			continue
		}
		if a, ok := s.Attributes.ContainsAttribute(p.AttributeName); ok {
			return s, a, true
		}
	}
	return schema.Schema{}, schema.CoreAttribute{}, false
}

// normalizeFilter rewrites Entra ID's `attr[filter].sub op value`, which
// is outside RFC 7644's grammar, as `attr[(filter) and sub op value]`: the
// same test of one value of attr (Entra ID sends a single equality in the
// brackets; one with "or" in them is left alone, and refused by the
// parser). Anything else is returned unchanged.
// Each rewrite removes a "]." outside a string, so this ends.
func normalizeFilter(s string) string {
	for {
		i := closingBeforeDot(s)
		if i < 0 {
			return s
		}
		open := openingOf(s, i)
		j := i + 2
		for j < len(s) && isNameChar(s[j]) {
			j++
		}
		sub := s[i+2 : j]
		k := skipSpace(s, j)
		opEnd := k
		for opEnd < len(s) && isNameChar(s[opEnd]) {
			opEnd++
		}
		op := s[k:opEnd]
		if sub == "" || open < 0 || op == "" {
			return s
		}
		end := opEnd
		cmp := sub + " " + op
		if !strings.EqualFold(op, "pr") {
			v := skipSpace(s, opEnd)
			end = valueEnd(s, v)
			if end == v {
				return s
			}
			cmp += " " + s[v:end]
		}
		if hasOr(s[open+1 : i]) {
			// The grammar's brackets take no parentheses, and "and"
			// binds tighter than "or": no rewrite says the same.
			return s
		}
		s = s[:open+1] + s[open+1:i] + " and " + cmp + "]" + s[end:]
	}
}

// hasOr tells whether a value filter has an "or" outside its strings.
func hasOr(s string) bool {
	return indexOutsideStrings(s, func(i int) bool {
		return (s[i] == 'o' || s[i] == 'O') && i > 0 && s[i-1] == ' ' && i+2 < len(s) && (s[i+1] == 'r' || s[i+1] == 'R') && s[i+2] == ' '
	}) >= 0
}

// closingBeforeDot finds a ']' outside a string followed by '.'.
func closingBeforeDot(s string) int {
	return indexOutsideStrings(s, func(i int) bool { return s[i] == ']' && i+1 < len(s) && s[i+1] == '.' })
}

// indexOutsideStrings returns the first index outside the filter's string
// literals at which at holds, or -1.
func indexOutsideStrings(s string, at func(i int) bool) int {
	inString := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case !inString && at(i):
			return i
		}
	}
	return -1
}

// openingOf finds the '[' that the ']' at i closes (brackets do not nest
// in the grammar; the last '[' before i outside a string).
func openingOf(s string, i int) int {
	inString, open := false, -1
	for k := 0; k < i; k++ {
		switch c := s[k]; {
		case inString && c == '\\':
			k++
		case c == '"':
			inString = !inString
		case !inString && c == '[':
			open = k
		}
	}
	return open
}

func isNameChar(c byte) bool {
	return c == '_' || c == '-' || c == '$' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func skipSpace(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

// valueEnd returns the end of the comparison value starting at i: a JSON
// string, or a bare word (true, false, null, a number).
func valueEnd(s string, i int) int {
	if i < len(s) && s[i] == '"' {
		for k := i + 1; k < len(s); k++ {
			switch s[k] {
			case '\\':
				k++
			case '"':
				return k + 1
			}
		}
		return i
	}
	k := i
	for k < len(s) && s[k] != ' ' && s[k] != ')' && s[k] != ']' {
		k++
	}
	return k
}

// takeSearchFilter removes the filter from a .search body, for
// ServeHTTP to parse as it does a query's. A body that is not an object
// is left for the library to refuse.
func takeSearchFilter(body []byte) ([]byte, string, bool) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil || m == nil {
		return body, "", false
	}
	k := findKey(m, "filter")
	f, ok := m[k].(string)
	if k == "" || !ok || f == "" {
		return body, "", false
	}
	delete(m, k)
	out, err := json.Marshal(m)
	if err != nil {
		return body, "", false
	}
	return out, f, true
}
