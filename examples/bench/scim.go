package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// runSCIM is `bench scim`: a background load shaped like an IdP's sync of
// an organization's directory. It takes a fresh SCIM token from the
// operator admin API, provisions a few users and a group of its own, says
// "scim: running" on stdout, then sends -rate changes per second — user
// PATCHes, user creates, and group membership adds and removes — all to
// users other than the one the benchmark is signed in as, until it is
// sent SIGTERM or -duration passes. It then prints what it did and exits
// 1 if any change failed, so that run.sh never reports a number measured
// beside a load that was not there.
func runSCIM(args []string) error {
	fs := flag.NewFlagSet("scim", flag.ExitOnError)
	admin := fs.String("admin", "http://127.0.0.1:2019", "Caddy admin API base URL (the operator API is under /sso/orgs)")
	org := fs.String("org", "example", "organization to sync")
	domain := fs.String("domain", "example.com", "verified domain of the organization, for the users' addresses")
	rate := fs.Float64("rate", 20, "changes per second")
	users := fs.Int("users", 40, "users provisioned first, whom the changes are about")
	duration := fs.Duration("duration", 0, "stop after this long (0: at SIGTERM or SIGINT)")
	_ = fs.Parse(args)
	if *rate <= 0 || *users < 2 {
		return errors.New("scim: -rate must be positive and -users at least 2")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	c, err := newSCIMClient(ctx, *admin, *org)
	if err != nil {
		return err
	}
	s := &syncer{c: c, domain: *domain, run: randomHex(4), member: map[string]bool{}}
	if err := s.setUp(ctx, *users); err != nil {
		return err
	}
	fmt.Println("scim: running")

	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	defer tick.Stop()
	start := time.Now()
	var done, failed int
	var firstErr error
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		if err := s.change(ctx, i); err != nil {
			if ctx.Err() != nil {
				break // interrupted mid-request: not a failure of the gateway
			}
			failed++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		done++
	}
	el := time.Since(start).Seconds()
	fmt.Printf("scim: %d changes in %.1f s (%.1f/s), %d failed\n", done, el, float64(done)/el, failed)
	if failed > 0 {
		return fmt.Errorf("scim: %d of %d changes failed, the first: %w", failed, done+failed, firstErr)
	}
	return nil
}

// syncer holds what the load has provisioned.
type syncer struct {
	c      *scimClient
	domain string
	run    string // tells this run's users from an earlier run's
	users  []string
	group  string
	member map[string]bool
	next   int // users created so far, for unique names
}

func (s *syncer) setUp(ctx context.Context, n int) error {
	for range n {
		if _, err := s.createUser(ctx); err != nil {
			return err
		}
	}
	out, err := s.c.do(ctx, http.MethodPost, "/Groups", http.StatusCreated, map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "bench-sync-" + s.run, // never the org's admin group
		"externalId":  "bench-sync-" + s.run,
	})
	if err != nil {
		return err
	}
	s.group, _ = out["id"].(string)
	if s.group == "" {
		return errors.New("scim: the created group has no id")
	}
	return nil
}

func (s *syncer) createUser(ctx context.Context) (string, error) {
	s.next++
	email := fmt.Sprintf("bench-sync-%s-%d@%s", s.run, s.next, s.domain)
	out, err := s.c.do(ctx, http.MethodPost, "/Users", http.StatusCreated, map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName":    email,
		"externalId":  "bench-" + s.run + "-" + fmt.Sprint(s.next),
		"displayName": "Sync User " + fmt.Sprint(s.next),
		"emails":      []any{map[string]any{"value": email, "type": "work", "primary": true}},
		"active":      true,
	})
	if err != nil {
		return "", err
	}
	id, _ := out["id"].(string)
	if id == "" {
		return "", errors.New("scim: the created user has no id")
	}
	s.users = append(s.users, id)
	return id, nil
}

// change sends the i-th change: in turn a user PATCH, a user create, a
// group member add and a group member remove.
func (s *syncer) change(ctx context.Context, i int) error {
	u := s.users[(i/4*7)%len(s.users)]
	switch i % 4 {
	case 0:
		_, err := s.c.do(ctx, http.MethodPatch, "/Users/"+u, http.StatusOK, patch(map[string]any{
			"op": "replace", "path": "displayName", "value": fmt.Sprintf("Sync User %s #%d", u[:8], i),
		}))
		return err
	case 1:
		_, err := s.createUser(ctx)
		return err
	case 2:
		for _, id := range s.users {
			if !s.member[id] {
				u = id
				break
			}
		}
		_, err := s.c.do(ctx, http.MethodPatch, "/Groups/"+s.group, http.StatusOK, patch(map[string]any{
			"op": "add", "path": "members", "value": []any{map[string]any{"value": u}},
		}))
		if err == nil {
			s.member[u] = true
		}
		return err
	default:
		for id := range s.member {
			u = id
			break
		}
		if !s.member[u] {
			return nil
		}
		_, err := s.c.do(ctx, http.MethodPatch, "/Groups/"+s.group, http.StatusOK, patch(map[string]any{
			"op": "remove", "path": `members[value eq "` + u + `"]`,
		}))
		if err == nil {
			delete(s.member, u)
		}
		return err
	}
}

func patch(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
}

// scimClient talks to one organization's SCIM endpoint as its IdP would.
type scimClient struct {
	hc    *http.Client
	base  string
	token string
}

// newSCIMClient takes a new SCIM token for org from the operator admin
// API (revoking the previous one).
func newSCIMClient(ctx context.Context, admin, org string) (*scimClient, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(admin, "/")+"/sso/orgs/"+org+"/scim-token", nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scim: taking a token: %w", err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token   string `json:"token"`
		BaseURL string `json:"scim_base_url"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("scim: taking a token: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" || tok.BaseURL == "" {
		return nil, fmt.Errorf("scim: taking a token: unexpected answer (%v)", err)
	}
	return &scimClient{hc: hc, base: tok.BaseURL, token: tok.Token}, nil
}

// do sends one request and requires the status want.
func (c *scimClient) do(ctx context.Context, method, path string, want int, body any) (map[string]any, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scim: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return nil, fmt.Errorf("scim: %s %s: %s, want %d: %s", method, path, resp.Status, want, bytes.TrimSpace(b))
	}
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("scim: %s %s: %w", method, path, err)
		}
	}
	return out, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
