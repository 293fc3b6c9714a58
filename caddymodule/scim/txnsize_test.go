package scim

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
)

// A membership change larger than the store can make in one transaction
// (Badger's is about 105k keys; reachable only where an operator raised
// max_group_members and the body size) is refused with a clear error and
// leaves nothing behind, not answered with a 500.
func TestMembershipChangeTooBigForOneTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 110,000 users")
	}
	const n = 110_000
	e := newEnv(t, func(c *Config) {
		c.Limits.MaxGroupMembers = n
		c.Limits.MaxUsers = n
		c.Limits.MaxRequestBytes = 8 << 20
	})
	ids := loadMembers(t, e.store, "acme", n)
	var body bytes.Buffer
	body.WriteString(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Everyone","members":[`)
	for i, id := range ids {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"value":%q}`, id)
	}
	body.WriteString(`]}`)
	r := e.call("acme", http.MethodPost, "/Groups", body.Bytes())
	e.scimError(r, http.StatusRequestEntityTooLarge, "")
	list := e.must(http.StatusOK, "acme", http.MethodGet, "/Groups", nil)
	if total := list.body["totalResults"]; fmt.Sprint(total) != "0" {
		t.Errorf("after the refusal, %v groups: %s", total, list.raw)
	}
}
