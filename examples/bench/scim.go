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
	"sync"
	"syscall"
	"time"
)

// runSCIM is `bench scim`: a background load shaped like an IdP's sync of
// an organization's directory. It uses the SCIM token and base URL in
// BENCH_SCIM_TOKEN and BENCH_SCIM_BASE (see `bench scim-token`), else takes
// a fresh token from the operator admin API, and provisions a few users and groups of its own, says
// "scim: running" on stdout, then starts -rate changes per second — user
// PATCHes, user creates, and group membership adds and removes, all of
// users other than the one the benchmark is signed in as — until it is
// sent SIGTERM or -duration passes. Like an IdP's provisioning workers, it
// keeps up to -inflight changes under way at once (one per group at a
// time), so that a slower store still gets the rate asked for; a tick
// that finds them all busy is skipped, and shows in the rate it reports.
// It then prints what it did and exits 1 if any change failed, so that
// run.sh never reports a number measured beside a load that was not
// there.
func runSCIM(args []string) error {
	fs := flag.NewFlagSet("scim", flag.ExitOnError)
	admin := fs.String("admin", "http://127.0.0.1:2019", "Caddy admin API base URL (the operator API is under /sso/orgs)")
	org := fs.String("org", "example", "organization to sync")
	domain := fs.String("domain", "example.com", "verified domain of the organization, for the users' addresses")
	rate := fs.Float64("rate", 20, "changes per second")
	users := fs.Int("users", 40, "users provisioned first, whom the changes are about")
	inflight := fs.Int("inflight", 8, "changes under way at once, at most")
	duration := fs.Duration("duration", 0, "stop after this long (0: at SIGTERM or SIGINT)")
	_ = fs.Parse(args)
	if *rate <= 0 || *users < 2 || *inflight < 1 {
		return errors.New("scim: -rate must be positive, -users at least 2 and -inflight at least 1")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	var c *scimClient
	if tok, base := os.Getenv("BENCH_SCIM_TOKEN"), os.Getenv("BENCH_SCIM_BASE"); tok != "" && base != "" {
		c = &scimClient{hc: &http.Client{Timeout: 30 * time.Second}, base: base, token: tok}
	} else {
		var err error
		if c, err = newSCIMClient(ctx, *admin, *org); err != nil {
			return err
		}
	}
	s := &syncer{c: c, domain: *domain, run: randomHex(4)}
	if err := s.setUp(ctx, *users, *inflight); err != nil {
		return err
	}
	fmt.Println("scim: running")

	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	defer tick.Stop()
	slots := make(chan struct{}, *inflight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var done, failed, skipped int
	var firstErr error
	start := time.Now()
loop:
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			skipped++
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-slots }()
			err := s.change(ctx, i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				done++
			case ctx.Err() != nil:
				// Interrupted mid-request at the end: not a failure.
			default:
				failed++
				if firstErr == nil {
					firstErr = err
				}
			}
		}(i)
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf("scim: %d changes in %.1f s (%.1f/s), %d failed, %d ticks skipped (all %d busy)\n",
		done, el, float64(done)/el, failed, skipped, *inflight)
	if failed > 0 {
		return fmt.Errorf("scim: %d of %d changes failed, the first: %w", failed, done+failed, firstErr)
	}
	return nil
}

// runSCIMToken is `bench scim-token`: it takes a new SCIM token for the
// org (revoking the previous one) and prints the lines
// BENCH_SCIM_BASE=<url> and BENCH_SCIM_TOKEN=<token>, for run.sh to
// export. A token rotation writes the org record, which sends the org's
// sessions to the full re-check once, so run.sh takes one token for all
// its rounds rather than one per round.
func runSCIMToken(args []string) error {
	fs := flag.NewFlagSet("scim-token", flag.ExitOnError)
	admin := fs.String("admin", "http://127.0.0.1:2019", "Caddy admin API base URL")
	org := fs.String("org", "example", "organization")
	_ = fs.Parse(args)
	c, err := newSCIMClient(context.Background(), *admin, *org)
	if err != nil {
		return err
	}
	fmt.Printf("BENCH_SCIM_BASE=%s\nBENCH_SCIM_TOKEN=%s\n", c.base, c.token)
	return nil
}

// syncer holds what the load has provisioned.
type syncer struct {
	c      *scimClient
	domain string
	run    string // tells this run's users from an earlier run's
	groups []*syncGroup

	mu    sync.Mutex
	users []string
	next  int // users created so far, for unique names
	turn  int // the user whose turn it is to change
}

// syncGroup is one provisioned group; its mutex is held while a change
// to it is under way, as an IdP sends one group's changes in order.
type syncGroup struct {
	mu     sync.Mutex
	id     string
	member map[string]bool
}

func (s *syncer) setUp(ctx context.Context, users, groups int) error {
	for range users {
		if _, err := s.createUser(ctx); err != nil {
			return err
		}
	}
	for i := range groups {
		name := fmt.Sprintf("bench-sync-%s-%d", s.run, i) // never the org's admin group
		out, err := s.c.do(ctx, http.MethodPost, "/Groups", http.StatusCreated, map[string]any{
			"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
			"displayName": name,
			"externalId":  name,
		})
		if err != nil {
			return err
		}
		id, _ := out["id"].(string)
		if id == "" {
			return errors.New("scim: the created group has no id")
		}
		s.groups = append(s.groups, &syncGroup{id: id, member: map[string]bool{}})
	}
	return nil
}

func (s *syncer) createUser(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.next++
	n := s.next
	s.mu.Unlock()
	email := fmt.Sprintf("bench-sync-%s-%d@%s", s.run, n, s.domain)
	out, err := s.c.do(ctx, http.MethodPost, "/Users", http.StatusCreated, map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName":    email,
		"externalId":  fmt.Sprintf("bench-%s-%d", s.run, n),
		"displayName": fmt.Sprintf("Sync User %d", n),
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
	s.mu.Lock()
	s.users = append(s.users, id)
	s.mu.Unlock()
	return id, nil
}

// nextUser is the next user in turn: with many more users than changes
// under way, no two concurrent changes are about the same user.
func (s *syncer) nextUser() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.turn++
	return s.users[s.turn%len(s.users)]
}

// change sends the i-th change: in turn a user PATCH, a user create, a
// group member add and a group member remove.
func (s *syncer) change(ctx context.Context, i int) error {
	switch i % 4 {
	case 0:
		u := s.nextUser()
		_, err := s.c.do(ctx, http.MethodPatch, "/Users/"+u, http.StatusOK, patch(map[string]any{
			"op": "replace", "path": "displayName", "value": fmt.Sprintf("Sync User %s #%d", u[:8], i),
		}))
		return err
	case 1:
		_, err := s.createUser(ctx)
		return err
	}
	g := s.groups[(i/4)%len(s.groups)]
	g.mu.Lock()
	defer g.mu.Unlock()
	if i%4 == 2 || len(g.member) == 0 {
		u := s.nextUser()
		if g.member[u] {
			return nil
		}
		_, err := s.c.do(ctx, http.MethodPatch, "/Groups/"+g.id, http.StatusOK, patch(map[string]any{
			"op": "add", "path": "members", "value": []any{map[string]any{"value": u}},
		}))
		if err == nil {
			g.member[u] = true
		}
		return err
	}
	for u := range g.member {
		_, err := s.c.do(ctx, http.MethodPatch, "/Groups/"+g.id, http.StatusOK, patch(map[string]any{
			"op": "remove", "path": `members[value eq "` + u + `"]`,
		}))
		if err == nil {
			delete(g.member, u)
		}
		return err
	}
	return nil
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
