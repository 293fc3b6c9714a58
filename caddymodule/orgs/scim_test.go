package orgs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func TestRotateSCIMToken(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	e.createOrg("globex")

	r := e.must(http.StatusCreated, "POST", "/sso/orgs/acme/scim-token", nil)
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
	got := r.object(t)
	token, _ := got["token"].(string)
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token %q is not 32 base64url bytes: %v", token, err)
	}
	if got["scim_base_url"] != "https://gw.example.net/sso/scim/acme/v2" {
		t.Errorf("scim_base_url = %v", got["scim_base_url"])
	}

	o, err := e.store.GetOrg("acme")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(token))
	if !bytes.Equal(o.SCIMTokenHash, sum[:]) || time.Since(o.SCIMTokenCreated) > time.Minute {
		t.Fatalf("stored hash %x created %v", o.SCIMTokenHash, o.SCIMTokenCreated)
	}
	if other, _ := e.store.GetOrg("globex"); len(other.SCIMTokenHash) != 0 {
		t.Fatal("another org got a token")
	}

	// The organization view says a token exists, and never shows it.
	view := e.must(http.StatusOK, "GET", "/sso/orgs/acme", nil)
	if v := view.object(t); v["scim_token"] != true || v["scim_token_created"] == nil {
		t.Errorf("view = %v", v)
	}
	if strings.Contains(string(view.raw), token) {
		t.Fatal("the view shows the token")
	}

	// Rotation replaces the hash (revoking the old token) and resets the
	// last-used time; the audit trail records it without the token.
	if _, err := e.store.UpdateOrg("acme", func(o *store.Org) error { o.SCIMTokenLastUsed = time.Now(); return nil }); err != nil {
		t.Fatal(err)
	}
	token2 := e.must(http.StatusCreated, "POST", "/sso/orgs/acme/scim-token", "{}").object(t)["token"].(string)
	if token2 == token {
		t.Fatal("rotation returned the same token")
	}
	o, _ = e.store.GetOrg("acme")
	sum2 := sha256.Sum256([]byte(token2))
	if !bytes.Equal(o.SCIMTokenHash, sum2[:]) || !o.SCIMTokenLastUsed.IsZero() {
		t.Fatalf("after rotation: hash %x, last used %v", o.SCIMTokenHash, o.SCIMTokenLastUsed)
	}
	events, err := e.store.ListAudit("acme", 10)
	if err != nil {
		t.Fatal(err)
	}
	rotations := 0
	for _, ev := range events {
		if ev.Action == "scim.token.rotate" {
			rotations++
			if ev.Actor != OperatorActor || ev.Outcome != OutcomeSuccess {
				t.Errorf("event %+v", ev)
			}
			for _, v := range ev.Details {
				if strings.Contains(v, token) || strings.Contains(v, token2) {
					t.Fatalf("audit event carries the token: %+v", ev)
				}
			}
		}
	}
	if rotations != 2 {
		t.Errorf("%d rotation events, want 2", rotations)
	}

	// Refusals.
	e.must(http.StatusNotFound, "POST", "/sso/orgs/nope/scim-token", nil)
	e.must(http.StatusNotFound, "POST", "/sso/orgs/NOT_AN_ID/scim-token", nil)
	e.must(http.StatusBadRequest, "POST", "/sso/orgs/acme/scim-token", `{"token":"mine"}`)
	e.must(http.StatusMethodNotAllowed, "GET", "/sso/orgs/acme/scim-token", nil)
	if o3, _ := e.store.GetOrg("acme"); !bytes.Equal(o3.SCIMTokenHash, sum2[:]) {
		t.Fatal("a refused request changed the token")
	}
}

func TestSCIMBaseURL(t *testing.T) {
	svc := New(nil, func(id string) SPURLs {
		return SPURLs{EntityID: "https://gw.example.net/auth/saml/" + id}
	}, nil)
	if got := svc.SCIMBaseURL("acme"); got != "https://gw.example.net/auth/scim/acme/v2" {
		t.Errorf("SCIMBaseURL = %q", got)
	}
	if got := New(nil, nil, nil).SCIMBaseURL("acme"); got != "" {
		t.Errorf("without URLs: %q", got)
	}
	odd := New(nil, func(id string) SPURLs { return SPURLs{EntityID: "https://idp-chosen.example/entity"} }, nil)
	if got := odd.SCIMBaseURL("acme"); got != "" {
		t.Errorf("unrelated entity ID: %q", got)
	}
}
