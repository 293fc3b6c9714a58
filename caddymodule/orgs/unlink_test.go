package orgs

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func TestUnlinkUser(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	e.createOrg("globex")
	saml := &store.User{OrgID: "acme", UserName: "sam@acme.example.com", ExternalID: "_transient-1", Active: true, Source: store.SourceSAML}
	scim := &store.User{OrgID: "acme", UserName: "sue@acme.example.com", ExternalID: "00u-sue", Active: true, Source: store.SourceSCIM}
	for _, u := range []*store.User{saml, scim} {
		if err := e.store.CreateUser(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.CreateSession(&store.Session{ID: "s-sam", OrgID: "acme", UserID: saml.ID, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	// Refusals change no user.
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/sso/orgs/acme/users/nobody@acme.example.com/unlink", http.StatusNotFound},
		{"/sso/orgs/globex/users/" + saml.ID + "/unlink", http.StatusNotFound}, // another org's user
		{"/sso/orgs/nope/users/" + saml.ID + "/unlink", http.StatusNotFound},
		{"/sso/orgs/acme/users/" + scim.ID + "/unlink", http.StatusConflict},
	} {
		e.must(c.status, "POST", c.path, nil)
	}
	e.must(http.StatusBadRequest, "POST", "/sso/orgs/acme/users/"+saml.ID+"/unlink", map[string]any{"force": true})
	if u, err := e.store.GetUser("acme", scim.ID); err != nil || u.ExternalID != "00u-sue" {
		t.Errorf("SCIM user after a refused unlink: %+v %v", u, err)
	}

	// By address, whatever its case: the identifier goes, so do the sessions.
	r := e.must(http.StatusOK, "POST", "/sso/orgs/acme/users/SAM@acme.example.com/unlink", nil).object(t)
	if r["user_id"] != saml.ID || r["previous_id"] != "_transient-1" || r["sessions_ended"] != float64(1) {
		t.Errorf("unlink = %v", r)
	}
	if u, err := e.store.GetUser("acme", saml.ID); err != nil || u.ExternalID != "" {
		t.Errorf("after the unlink: %+v %v", u, err)
	}
	if _, err := e.store.GetSession("s-sam"); err == nil {
		t.Error("the unlinked user's session survived")
	}
	// Again: nothing left to forget, still fine.
	r = e.must(http.StatusOK, "POST", "/sso/orgs/acme/users/"+saml.ID+"/unlink", nil).object(t)
	if r["previous_id"] != "" {
		t.Errorf("second unlink = %v", r)
	}
	events := string(e.must(http.StatusOK, "GET", "/sso/orgs/acme/audit", nil).raw)
	for _, want := range []string{`"user.unlink"`, `"_transient-1"`, `"provisioned by SCIM"`} {
		if !strings.Contains(events, want) {
			t.Errorf("audit lacks %s: %s", want, events)
		}
	}
}
