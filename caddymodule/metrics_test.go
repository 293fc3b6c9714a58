package caddymodule

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ssogate/ssogate/caddymodule/samlsp"
)

func TestSCIMLabels(t *testing.T) {
	for _, c := range []struct{ rest, method, org, resource, op string }{
		{"/scim/acme/v2/Users", "GET", "acme", "Users", "list"},
		{"/scim/acme/v2/Users/123", "GET", "acme", "Users", "get"},
		{"/scim/acme/v2/Users", "POST", "acme", "Users", "create"},
		{"/scim/acme/v2/Users/.search", "POST", "acme", "Users", "search"},
		{"/scim/acme/v2/.search", "POST", "acme", "other", "search"},
		{"/scim/acme/v2/Groups/1", "PATCH", "acme", "Groups", "patch"},
		{"/scim/acme/v2/Groups/1", "PUT", "acme", "Groups", "replace"},
		{"/scim/acme/v2/Groups/1", "DELETE", "acme", "Groups", "delete"},
		{"/scim/acme/v2/Evil-<script>", "GET", "acme", "other", "list"},
		{"/scim/acme/v2/Users", "TRACE", "acme", "Users", "other"},
	} {
		org, res, op := scimLabels(c.rest, c.method)
		if org != c.org || res != c.resource || op != c.op {
			t.Errorf("%s %s: %s %s %s, want %s %s %s", c.method, c.rest, org, res, op, c.org, c.resource, c.op)
		}
	}
}

// TestSAMLRefusalReasonsAreBounded: free text (a refused response's error
// carries attacker-chosen detail) never becomes a label value.
func TestSAMLRefusalReasonsAreBounded(t *testing.T) {
	allowed := map[string]bool{"org_inactive": true, "no_request": true, "replay": true, "domain_not_verified": true,
		"user_deactivated": true, "not_authorized": true, "identity_mismatch": true, "invalid_response": true, "other": true}
	for _, r := range []string{
		"org inactive", "AuthnRequest already answered", samlsp.ErrRefused.Error() + ": issuer \"<evil>\" unknown",
		"not in the admin group", "anything an attacker wants " + string(make([]byte, 100)),
	} {
		if got := samlRefusalReason(r); !allowed[got] {
			t.Errorf("%q → %q", r, got)
		}
	}
	if samlRefusalReason(samlsp.ErrRefused.Error()+": bad signature") != "invalid_response" {
		t.Error("refused response not classified")
	}
}

// TestMetricsTwiceInOneRegistry: a second set of metrics in the same
// registry shares the first's collectors instead of failing.
func TestMetricsTwiceInOneRegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	count := func() (int, error) { return 3, nil }
	live := func() float64 { return 1 }
	a, err := newMetrics(reg, count, live)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newMetrics(reg, count, live)
	if err != nil {
		t.Fatal(err)
	}
	if a.signIns != b.signIns || a.storeWrites != b.storeWrites {
		t.Error("the second set does not share the registered collectors")
	}
	b.recheck.WithLabelValues("hit").Inc()
	if v := testutil.ToFloat64(a.recheck.WithLabelValues("hit")); v != 1 {
		t.Errorf("hit = %v", v)
	}
}
