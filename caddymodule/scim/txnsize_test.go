package scim

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// A membership change larger than the store can make in one transaction
// (Badger's holds about 10 MB of keys; one request gets there only where
// an operator raised max_request_size) is refused with a clear error and
// changes nothing, not answered with a 500; and max_group_members stops
// where a group of that size can still be deleted in one transaction.
func TestMembershipChangeTooBigForOneTransaction(t *testing.T) {
	if err := (Limits{MaxGroupMembers: ceilGroupMembers + 1}).Validate(); err == nil || !strings.Contains(err.Error(), "max_group_members") {
		t.Fatalf("max_group_members over the ceiling: %v", err)
	}
	if testing.Short() {
		t.Skip("writes 120,000 users")
	}
	const n = ceilGroupMembers
	e := newEnv(t, func(c *Config) {
		c.Limits.MaxGroupMembers = n
		c.Limits.MaxUsers = 2 * n
		c.Limits.MaxRequestBytes = 8 << 20
	})
	ids := loadMembers(t, e.store, "acme", 2*n)
	members := func(ids []string) []byte {
		var b bytes.Buffer
		b.WriteByte('[')
		for i, id := range ids {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"value":%q}`, id)
		}
		b.WriteByte(']')
		return b.Bytes()
	}
	create := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Everyone","members":` + string(members(ids[:n])) + `}`
	gid, _ := e.must(http.StatusCreated, "acme", http.MethodPost, "/Groups", create).body["id"].(string)

	// Every member out and as many others in: 2n memberships in one request.
	replace := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"members","value":` + string(members(ids[n:])) + `}]}`
	r := e.call("acme", http.MethodPatch, "/Groups/"+gid, replace)
	e.scimError(r, http.StatusBadRequest, "invalidValue")
	if !strings.Contains(string(r.raw), "nothing was changed") {
		t.Errorf("refusal without its reason: %s", r.raw)
	}
	got := e.must(http.StatusOK, "acme", http.MethodGet, "/Groups/"+gid, nil)
	if m, _ := got.body["members"].([]any); len(m) != n || !strings.Contains(string(got.raw), ids[0]) || strings.Contains(string(got.raw), ids[n]) {
		t.Fatalf("after the refusal the group has %d members (want the %d it had)", len(m), n)
	}
	// A group at the ceiling can be deleted.
	e.must(http.StatusNoContent, "acme", http.MethodDelete, "/Groups/"+gid, nil)
}
