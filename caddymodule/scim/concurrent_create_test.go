package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/ssogate/ssogate/store"
)

// TestConcurrentCreates: creations sent in parallel (as Entra ID sends
// them) take no lock and share store transactions, yet max_users holds
// exactly, a userName sent several times in different case is created
// once, and every created user has its audit event. On both backends:
// on PostgreSQL a commit group reads its writes' keys in one exchange.
func TestConcurrentCreates(t *testing.T) {
	t.Run("badger", func(t *testing.T) { testConcurrentCreates(t, nil) })
	t.Run("postgres", func(t *testing.T) { testConcurrentCreates(t, postgresBackend(t, "", "")) })
}

func testConcurrentCreates(t *testing.T, b store.Backend) {
	const max = 10
	e := newEnvWith(t, store.Options{}, b, func(c *Config) { c.Limits.MaxUsers = max })
	post := func(userName string) (int, error) {
		body, err := json.Marshal(oktaUser(userName))
		if err != nil {
			return 0, err
		}
		req, err := http.NewRequest(http.MethodPost, e.http.URL+testPrefix+"/scim/acme/v2/Users", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+e.tokens["acme"])
		req.Header.Set("Content-Type", "application/scim+json")
		res, err := e.http.Client().Do(req)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}

	// The same person eight times, in different case: one is created.
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := "Same.Person@acme.example"
			if i%2 == 1 {
				name = "same.person@ACME.example"
			}
			status, err := post(name)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			statuses[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[http.StatusCreated] != 1 || statuses[http.StatusConflict] != 7 {
		t.Fatalf("statuses of one userName sent 8 times: %v", statuses)
	}

	// 30 more people, room for max-1: exactly that many are created.
	clear(statuses)
	for i := range 30 {
		wg.Go(func() {
			status, err := post(fmt.Sprintf("person%d@acme.example", i))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			statuses[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[http.StatusCreated] != max-1 || statuses[http.StatusForbidden] != 30-(max-1) {
		t.Fatalf("statuses of 30 creations with room for %d: %v", max-1, statuses)
	}
	if n, err := e.store.CountUsers("acme"); err != nil || n != max {
		t.Fatalf("CountUsers = %d, %v", n, err)
	}
	users, _, err := e.store.ListUsers("acme", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	events, err := e.store.ListAudit("acme", 1000)
	if err != nil {
		t.Fatal(err)
	}
	audited := map[string]bool{}
	for _, ev := range events {
		if ev.Action == "scim.user.create" && ev.Outcome == "success" {
			audited[ev.Details["user_id"]] = true
		}
	}
	if len(audited) != max {
		t.Errorf("%d creations audited, want %d", len(audited), max)
	}
	for _, u := range users {
		if !audited[u.ID] {
			t.Errorf("user %s (%s) created without its audit event", u.ID, u.UserName)
		}
	}
}
