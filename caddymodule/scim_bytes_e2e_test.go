package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestSCIMStoredBytesLimitFromConfig: with max_stored_bytes in the sso
// app's scim_limits, the gateway Caddy runs refuses the SCIM create that
// would take an organization past it, with SCIM error JSON, and accepts
// creates again once a deletion made room.
func TestSCIMStoredBytesLimitFromConfig(t *testing.T) {
	ctx := context.Background()
	orgs := env.AdminURL + "/sso/orgs"
	if _, err := env.Admin(ctx, http.MethodPost, orgs, map[string]any{"id": "scim-bytes", "name": "Bytes", "owner_email": "it@bytes.example"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = env.Admin(ctx, http.MethodDelete, orgs+"/scim-bytes", nil) })

	var cfg map[string]any
	if err := json.Unmarshal(env.CaddyConfig(), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["apps"].(map[string]any)["sso"].(map[string]any)["scim_limits"] = map[string]any{"max_stored_bytes": 16 << 10}
	raw, _ := json.Marshal(cfg)
	loadConfig(t, raw)
	t.Cleanup(func() { loadConfig(t, env.CaddyConfig()) })

	c := newSCIMClient(t, "scim-bytes")
	user := func(name string) map[string]any {
		return map[string]any{
			"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
			"userName": name,
			"title":    strings.Repeat("t", 1000),
		}
	}
	var ids []string
	for i := 0; ; i++ {
		status, out := c.do(http.MethodPost, "/Users", user(fmt.Sprintf("u%d@bytes.example", i)))
		if status == http.StatusCreated {
			ids = append(ids, out["id"].(string))
			if i > 50 {
				t.Fatal("the limit never applied")
			}
			continue
		}
		detail, _ := out["detail"].(string)
		if status != http.StatusForbidden || !strings.Contains(detail, "storage limit of 16384 bytes") {
			t.Fatalf("user %d: %d %v", i, status, out)
		}
		break
	}
	if len(ids) < 5 {
		t.Fatalf("only %d users fit", len(ids))
	}
	c.must(http.StatusNoContent, http.MethodDelete, "/Users/"+ids[0], nil)
	c.must(http.StatusCreated, http.MethodPost, "/Users", user("again@bytes.example"))
}
