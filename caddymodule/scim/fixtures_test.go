package scim

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/store"
)

// TestIdPFixtures replays the Okta and Entra ID (Azure AD) requests that
// ship with the SCIM library (internal/idp_test/testdata) against this
// server and checks the status and the response of each.
//
// The library recorded those responses from canned test handlers, so a
// fixture's response is compared after these adjustments, each one
// deliberate:
//   - The state a request needs (the user a GET reads, the group a PATCH
//     changes) is created first, with the fixture's ids; resources a POST
//     creates get this server's ids.
//   - meta.created/lastModified are this server's times; meta.location is
//     absolute here (RFC 7643 §3.1) and checked to end in the fixture's.
//   - schemas may also list the enterprise extension, which Users support.
//   - null equals absent; members compare by value (no display is kept).
//   - List responses: an empty Resources is [] and itemsPerPage is the
//     number of resources returned (RFC 7644 §3.4.2), where the recordings
//     have null and the page size asked for.
//   - Where a canned response contradicts its request (Okta's rename
//     answers the old name; Entra's user PATCH recomputes name.formatted),
//     the expectation follows the request; see fixes below.
func TestIdPFixtures(t *testing.T) {
	dir := fixtureDir(t)
	seen := 0
	for _, idp := range []string{"okta", "azuread"} {
		files, err := filepath.Glob(filepath.Join(dir, idp, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no %s fixtures in %s: %v", idp, dir, err)
		}
		for _, f := range files {
			name := idp + "/" + strings.TrimSuffix(filepath.Base(f), ".json")
			seen++
			t.Run(name, func(t *testing.T) {
				replay(t, name, readFixture(t, f))
			})
		}
	}
	if seen != 18 {
		t.Errorf("replayed %d fixtures, the library ships 18", seen)
	}
}

type fixture struct {
	Request    json.RawMessage
	Response   map[string]any
	Method     string
	Path       string
	StatusCode int
}

func fixtureDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/elimity-com/scim").Output()
	if err != nil {
		t.Fatalf("locating the SCIM module: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "internal", "idp_test", "testdata")
}

func readFixture(t *testing.T, path string) fixture {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := decodeNumbers(raw, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

func decodeNumbers(raw []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	return d.Decode(v)
}

// seeds create the state each fixture's request expects.
var seeds = map[string]func(t *testing.T, e *env, f fixture){
	"okta/retrieve_group": func(t *testing.T, e *env, f fixture) {
		seedUser(t, e, "b1c794f24f4c49f4b5d503a4cb2686ea", map[string]any{"userName": "group.a@okta.local"})
		seedGroup(t, e, f.Response)
	},
	"okta/retrieve_user": func(t *testing.T, e *env, f fixture) { seedUser(t, e, "", f.Response) },
	"okta/update_group_membership": func(t *testing.T, e *env, f fixture) {
		seedUser(t, e, "23a35c27-23d3-4c03-b4c5-6443c09e7173", map[string]any{"userName": "test.user@okta.local"})
		seedUser(t, e, "89bb1940-b905-4575-9e7f-6f887cfb368e", map[string]any{"userName": "other.user@okta.local"})
		seedGroup(t, e, map[string]any{"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv2",
			"members": []any{map[string]any{"value": "89bb1940-b905-4575-9e7f-6f887cfb368e"}}})
	},
	"okta/update_group_name": func(t *testing.T, e *env, f fixture) {
		seedGroup(t, e, map[string]any{"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv1"})
	},
	"okta/update_user": func(t *testing.T, e *env, f fixture) {
		seedUser(t, e, "23a35c27-23d3-4c03-b4c5-6443c09e7173", map[string]any{
			"userName": "test.user@okta.local", "name": map[string]any{"givenName": "Test", "familyName": "User"},
			"emails": []any{map[string]any{"primary": true, "value": "test.user@okta.local", "type": "work"}}, "active": true,
		})
	},
	"okta/update_user_patch": func(t *testing.T, e *env, f fixture) {
		u := copyMap(f.Response)
		u["active"] = true
		seedUser(t, e, "", u)
	},
	"azuread/get_group": func(t *testing.T, e *env, f fixture) { seedGroup(t, e, f.Response) },
	"azuread/get_group_dn": func(t *testing.T, e *env, f fixture) {
		seedGroup(t, e, f.Response["Resources"].([]any)[0].(map[string]any))
	},
	"azuread/get_user_query_resp": func(t *testing.T, e *env, f fixture) {
		seedUser(t, e, "", f.Response["Resources"].([]any)[0].(map[string]any))
	},
	"azuread/get_user_resp": func(t *testing.T, e *env, f fixture) { seedUser(t, e, "", f.Response) },
	"azuread/update_group": func(t *testing.T, e *env, f fixture) {
		seedUser(t, e, "f648f8d5ea4e4cd38e9c", map[string]any{"userName": "member@testuser.com"})
		seedGroup(t, e, map[string]any{"id": "fa2ce26709934589afc5", "externalId": "60f1bb27-2e1e-402d-bcc4-ec999564a194", "displayName": "displayName"})
	},
	"azuread/update_user": func(t *testing.T, e *env, f fixture) {
		seedUser(t, e, "6764549bef60420686bc", map[string]any{
			"externalId": "6c75de36-30fa-4d2d-a196-6bdcdb6b6539",
			"userName":   "Test_User_00aa00aa-00aa-00aa-00aa-00aa00aa00aa@testuser.com",
			"name":       map[string]any{"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
			"active":     true,
			"emails":     []any{map[string]any{"value": "Test_User_old@testuser.com", "type": "work", "primary": true}},
		})
	},
}

// fixes adjust a recorded response whose canned handler contradicts the
// request it answers.
var fixes = map[string]func(want map[string]any){
	// The request renames the group to "Test SCIMv2"; the stub answered
	// with a hard-coded "Test SCIMv20".
	"okta/update_group_name": func(want map[string]any) { want["displayName"] = "Test SCIMv2" },
	// The request replaces name.familyName only; the stub also rewrote
	// name.formatted. A server does not derive formatted from the parts.
	"azuread/update_user": func(want map[string]any) {
		want["name"].(map[string]any)["formatted"] = "givenName familyName"
	},
}

// checks verify what a fixture without a recorded response leads to.
var checks = map[string]func(t *testing.T, e *env){
	"okta/update_group_membership": func(t *testing.T, e *env) {
		g, err := e.store.GetGroup("acme", "abf4dd94-a4c0-4f67-89c9-76b03340cb9b")
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Clone(g.Members)
		slices.Sort(got)
		if want := []string{"23a35c27-23d3-4c03-b4c5-6443c09e7173", "89bb1940-b905-4575-9e7f-6f887cfb368e"}; !slices.Equal(got, want) {
			t.Errorf("members = %v, want %v", got, want)
		}
	},
}

func seedUser(t *testing.T, e *env, id string, attrs map[string]any) {
	t.Helper()
	if id == "" {
		id, _ = attrs["id"].(string)
	}
	u := &store.User{ID: id, OrgID: "acme", Active: true, Source: store.SourceSCIM}
	if err := setUserAttributes(u, attrs, true); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateUser(u); err != nil {
		t.Fatal(err)
	}
}

func seedGroup(t *testing.T, e *env, attrs map[string]any) {
	t.Helper()
	g := &store.Group{OrgID: "acme"}
	g.ID, _ = attrs["id"].(string)
	if err := setGroupAttributes(g, attrs); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateGroup(g); err != nil {
		t.Fatal(err)
	}
}

func replay(t *testing.T, name string, f fixture) {
	e := newEnv(t)
	if seed := seeds[name]; seed != nil {
		seed(t, e, f)
	}
	var body any
	if len(f.Request) > 0 {
		body = []byte(f.Request)
	}
	r := e.callWith(e.tokens["acme"], f.Method, testPrefix+"/scim/acme/v2"+f.Path, body)
	if r.status != f.StatusCode {
		t.Fatalf("status %d, want %d\n%s", r.status, f.StatusCode, r.raw)
	}
	if check := checks[name]; check != nil {
		check(t, e)
	}
	if len(f.Response) == 0 {
		return
	}
	want := f.Response
	if fix := fixes[name]; fix != nil {
		fix(want)
	}
	if f.Method == "POST" {
		// A created resource has this server's id.
		want = copyMap(want)
		want["id"] = r.body["id"]
		if m, ok := want["meta"].(map[string]any); ok {
			m = copyMap(m)
			m["location"] = strings.Split(m["location"].(string), "/")[0] + "/" + r.body["id"].(string)
			want["meta"] = m
		}
	}
	gotN, wantN := normalizeFixture(t, r.body, want)
	if !reflect.DeepEqual(gotN, wantN) {
		g, _ := json.MarshalIndent(gotN, "", "  ")
		w, _ := json.MarshalIndent(wantN, "", "  ")
		t.Errorf("response differs\n got: %s\nwant: %s", g, w)
	}
}

// normalizeFixture applies the adjustments TestIdPFixtures lists to both
// sides, checking along the way what it removes.
func normalizeFixture(t *testing.T, got, want map[string]any) (any, any) {
	t.Helper()
	if _, isList := want["Resources"]; isList || want["totalResults"] != nil {
		wantRes, _ := want["Resources"].([]any)
		gotRes, _ := got["Resources"].([]any)
		if gotRes == nil {
			t.Errorf("Resources is not an array: %v", got["Resources"])
		}
		want = copyMap(want)
		want["Resources"] = wantRes
		if wantRes == nil {
			want["Resources"] = []any{}
		}
		n, _ := json.Marshal(len(wantRes))
		want["itemsPerPage"] = json.Number(n)
		outW, outG := copyMap(want), copyMap(got)
		var nw, ng []any
		for i := range wantRes {
			var gi map[string]any
			if i < len(gotRes) {
				gi, _ = gotRes[i].(map[string]any)
			}
			a, b := normalizeResource(t, gi, wantRes[i].(map[string]any))
			ng, nw = append(ng, a), append(nw, b)
		}
		if len(gotRes) > len(wantRes) {
			ng = append(ng, gotRes[len(wantRes):]...)
		}
		if nw == nil {
			nw = []any{}
		}
		if ng == nil && gotRes != nil {
			ng = []any{}
		}
		outW["Resources"], outG["Resources"] = nw, ng
		return outG, outW
	}
	return normalizeResource(t, got, want)
}

func normalizeResource(t *testing.T, got, want map[string]any) (any, any) {
	t.Helper()
	got, want = copyMap(got), copyMap(want)
	gm, _ := got["meta"].(map[string]any)
	wm, _ := want["meta"].(map[string]any)
	if wm != nil {
		if gm["resourceType"] != wm["resourceType"] {
			t.Errorf("meta.resourceType %v, want %v", gm["resourceType"], wm["resourceType"])
		}
		if loc, _ := wm["location"].(string); loc != "" {
			if gl, _ := gm["location"].(string); !strings.HasPrefix(gl, "https://") || !strings.HasSuffix(gl, "/v2/"+loc) {
				t.Errorf("meta.location %q does not end in %q", gl, loc)
			}
		}
		if gm["created"] == nil || gm["lastModified"] == nil {
			t.Errorf("meta lacks times: %v", gm)
		}
	}
	delete(got, "meta")
	delete(want, "meta")
	gs, _ := got["schemas"].([]any)
	ws, _ := want["schemas"].([]any)
	for _, s := range ws {
		if !slices.Contains(gs, s) {
			t.Errorf("schemas %v lack %v", gs, s)
		}
	}
	delete(got, "schemas")
	delete(want, "schemas")
	for _, m := range []map[string]any{got, want} {
		if ms, ok := m["members"].([]any); ok {
			var ids []any
			for _, el := range ms {
				ids = append(ids, el.(map[string]any)["value"])
			}
			slices.SortFunc(ids, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
			m["members"] = ids
		}
	}
	return dropNulls(got), dropNulls(want)
}

func dropNulls(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if x == nil {
				continue
			}
			if l, ok := x.([]any); ok && len(l) == 0 {
				continue
			}
			out[k] = dropNulls(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = dropNulls(x)
		}
		return out
	}
	return v
}
