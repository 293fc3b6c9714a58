package orgs

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

var nextLink = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// TestAuditIsPaged: the whole trail is reachable through the API page by
// page, following the Link header, however many events it holds.
func TestAuditIsPaged(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	base := time.Now().Add(-time.Hour)
	for i := range 2345 {
		if err := e.store.AppendAudit(&store.AuditEvent{OrgID: "acme", Actor: "scim", Action: "user.update", Outcome: OutcomeSuccess,
			Details: map[string]string{"n": fmt.Sprint(i)}, Time: base.Add(time.Duration(i) * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	path, pages := "/sso/orgs/acme/audit?limit=1000", 0
	for path != "" {
		r := e.must(http.StatusOK, "GET", path, nil)
		pages++
		for _, ev := range r.array(t) {
			d := ev.(map[string]any)["details"].(map[string]any)
			if n, _ := d["n"].(string); n != "" {
				if seen[n] {
					t.Fatalf("event %s seen twice", n)
				}
				seen[n] = true
			}
		}
		path = ""
		if l := r.header.Get("Link"); l != "" {
			m := nextLink.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("Link = %q", l)
			}
			u, err := url.Parse(m[1])
			if err != nil || u.Query().Get("limit") != "1000" || u.Query().Get("before") == "" {
				t.Fatalf("next link %q", m[1])
			}
			path = m[1]
		}
	}
	if pages != 3 || len(seen) != 2345 {
		t.Errorf("%d pages, %d distinct events; want 3 and 2345", pages, len(seen))
	}

	// The default page and the caps.
	if got := e.must(http.StatusOK, "GET", "/sso/orgs/acme/audit", nil).array(t); len(got) != defaultAuditList {
		t.Errorf("default page: %d events", len(got))
	}
	e.must(http.StatusBadRequest, "GET", "/sso/orgs/acme/audit?limit=1001", nil)
	for _, bad := range []string{"nonsense", "AAAA", url.QueryEscape("../../x")} {
		r := e.must(http.StatusBadRequest, "GET", "/sso/orgs/acme/audit?before="+bad, nil)
		if m := r.object(t); m["field"] != "before" {
			t.Errorf("before=%s: %v", bad, m)
		}
	}
}
