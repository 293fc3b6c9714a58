package scim

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/store"
)

// An identifier whose index key is too long for either backend (a
// PostgreSQL index entry holds some 2.7 KB once compressed) is refused the same way on both, with a 400
// that changes nothing, rather than accepted by one and a 500 from the
// other.
func TestOverlongIdentifiersAreRefusedOnBothBackends(t *testing.T) {
	for _, backend := range []string{"badger", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var be store.Backend
			if backend == "postgres" {
				be = postgresBackend(t, "", "")
			}
			e := newEnvWith(t, store.Options{}, be, func(c *Config) { c.Limits.MaxStringLength = 4096 })
			// Within a raised max_string_length: 3,000 random letters,
			// which do not compress below PostgreSQL's limit.
			rng := rand.New(rand.NewPCG(1, 2))
			var b strings.Builder
			for range 3000 {
				b.WriteByte(byte('a' + rng.IntN(26)))
			}
			long := b.String()
			user := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
				"userName": "ann@acme.example", "externalId": long}
			e.scimError(e.call("acme", http.MethodPost, "/Users", user), http.StatusBadRequest, "invalidValue")
			group := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": long}
			e.scimError(e.call("acme", http.MethodPost, "/Groups", group), http.StatusBadRequest, "invalidValue")
			for _, path := range []string{"/Users", "/Groups"} {
				if r := e.must(http.StatusOK, "acme", http.MethodGet, path, nil); num(r.body["totalResults"]) != 0 {
					t.Errorf("%s after the refusals: %s", path, r.raw)
				}
			}
			// The same identifiers a third as long are fine; an update
			// to the long one is refused the same way.
			user["externalId"] = long[:1000]
			id, _ := e.must(http.StatusCreated, "acme", http.MethodPost, "/Users", user).body["id"].(string)
			user["externalId"] = long
			r := e.call("acme", http.MethodPut, "/Users/"+id, user)
			e.scimError(r, http.StatusBadRequest, "invalidValue")
			if strings.Contains(string(r.raw), long[:100]) {
				t.Errorf("the refusal quotes the identifier back: %.200s", r.raw)
			}
			if got := e.must(http.StatusOK, "acme", http.MethodGet, "/Users/"+id, nil); got.body["externalId"] != long[:1000] {
				t.Errorf("the refused update changed the user: %.200s", got.raw)
			}
		})
	}
}
