package scim

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

func TestNormalizeRequest(t *testing.T) {
	for _, c := range []struct {
		name, method, sub, in, want string
	}{
		{"string booleans in a POST", http.MethodPost, "/v2/Users",
			`{"userName":"a","active":"False","emails":[{"value":"a@x","primary":"True"}]}`,
			`{"userName":"a","active":false,"emails":[{"value":"a@x","primary":true}]}`},
		{"string boolean with a path", http.MethodPatch, "/v2/Users/1",
			`{"Operations":[{"op":"Replace","path":"active","value":"FALSE"}]}`,
			`{"Operations":[{"op":"Replace","path":"active","value":false}]}`},
		{"string boolean in a filtered path", http.MethodPatch, "/v2/Users/1",
			`{"Operations":[{"op":"replace","path":"emails[type eq \"work\"].primary","value":"true"}]}`,
			`{"Operations":[{"op":"replace","path":"emails[type eq \"work\"].primary","value":true}]}`},
		{"path-less values", http.MethodPatch, "/v2/Users/1",
			`{"Operations":[{"op":"replace","value":{"active":"True","manager":"m1"}}]}`,
			`{"Operations":[{"op":"replace","value":{"active":true,"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":{"value":"m1"}}}]}`},
		{"manager without URN, as an array", http.MethodPatch, "/v2/Users/1",
			`{"Operations":[{"op":"Add","path":"manager","value":[{"$ref":null,"value":"m1"}]}]}`,
			`{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"$ref":null,"value":"m1"}}]}`},
		{"strings that are not booleans stay", http.MethodPatch, "/v2/Users/1",
			`{"Operations":[{"op":"replace","path":"active","value":"maybe"}]}`,
			`{"Operations":[{"op":"replace","path":"active","value":"maybe"}]}`},
		{"string attributes are not touched", http.MethodPost, "/v2/Users",
			`{"userName":"true","title":"False"}`, `{"userName":"true","title":"False"}`},
		{"groups have no booleans", http.MethodPatch, "/v2/Groups/1",
			`{"Operations":[{"op":"add","path":"members","value":[{"value":"True"}]}]}`,
			`{"Operations":[{"op":"add","path":"members","value":[{"value":"True"}]}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := normalizeRequest(c.method, c.sub, []byte(c.in))
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("%s: %v", got, err)
			}
			if err := json.Unmarshal([]byte(c.want), &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
	// What is not a JSON object, or not for Users or Groups, passes as is.
	for _, in := range []string{`not json`, `[1,2]`, `null`, `{"userName":`} {
		if got := normalizeRequest(http.MethodPost, "/v2/Users", []byte(in)); string(got) != in {
			t.Errorf("%q became %q", in, got)
		}
	}
	in := `{"active":"False"}`
	if got := normalizeRequest(http.MethodPost, "/v2/Other", []byte(in)); string(got) != in {
		t.Errorf("other endpoint: %q", got)
	}
}
