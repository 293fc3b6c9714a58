package orgs

import (
	"net/http"
	"testing"
)

// TestConfigGroup: who may change SSO besides local admins. Unset by
// default; both name and ID, or neither (which clears it); the change is
// audited.
func TestConfigGroup(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	org := e.must(http.StatusOK, "GET", "/sso/orgs/acme", nil).object(t)
	if cg := org["config_group"].(map[string]any); len(cg) != 0 {
		t.Errorf("default config group = %v, want none", cg)
	}
	if r := e.call("PUT", "/sso/orgs/acme/config-group", map[string]string{"name": "Config", "id": ""}); r.status != http.StatusBadRequest || r.object(t)["field"] != "id" {
		t.Errorf("name without ID: %d %s", r.status, r.raw)
	}
	org = e.must(http.StatusOK, "PUT", "/sso/orgs/acme/config-group", map[string]string{"name": " SSO Config ", "id": "00g1cfg"}).object(t)
	if cg := org["config_group"].(map[string]any); cg["name"] != "SSO Config" || cg["id"] != "00g1cfg" {
		t.Errorf("config group = %v", cg)
	}
	org = e.must(http.StatusOK, "PUT", "/sso/orgs/acme/config-group", map[string]string{"name": " ", "id": ""}).object(t)
	if cg := org["config_group"].(map[string]any); len(cg) != 0 {
		t.Errorf("cleared config group = %v", cg)
	}
	n := 0
	events, err := e.store.ListAudit("acme", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if ev.Action == "config_group.set" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("config_group.set audited %d times, want 2", n)
	}
}
