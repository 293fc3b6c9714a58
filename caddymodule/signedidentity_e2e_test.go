package caddymodule_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/caddymodule/upstreamjwt"
	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/upstream"
)

// whoamiFull returns the demo upstream's whole JSON answer: the headers
// and its own check of the signed identity.
func (b *browser) whoamiFull(extra ...string) (int, upstream.Identity, http.Header) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.GatewayURL+"/whoami", nil)
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	p := b.do(req)
	var out upstream.Identity
	if p.status == http.StatusOK {
		if err := json.Unmarshal([]byte(p.body), &out); err != nil {
			b.t.Fatalf("upstream JSON: %v: %s", err, p.body)
		}
	}
	return p.status, out, p.header
}

func fetchJWKS(t *testing.T) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.Get(env.GatewayURL + "/sso/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header
}

// TestSignedIdentityReachesAndVerifiesAtTheApp: with signed_identity on
// (the demo's default), the app gets an ES256 token that verifies against
// the JWKS the gateway publishes, says who the headers say, is minted
// once per re-check rather than per request, and cannot be supplied by a
// client.
func TestSignedIdentityReachesAndVerifiesAtTheApp(t *testing.T) {
	loadGatewayConfig(t, demo.DefaultGatewayHandler(), nil)
	t.Cleanup(func() { loadGatewayConfig(t, map[string]any{"handler": "sso_gateway"}, nil) })

	// The first JWKS request creates the keys (store writes, which send
	// every session back to the full re-check); do it first, so that the
	// check of re-check reuse below sees no write.
	if code, _, _ := fetchJWKS(t); code != http.StatusOK {
		t.Fatalf("JWKS: %d", code)
	}
	b := newBrowser(t)
	b.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	status, id, _ := b.whoamiFull("X-SSO-JWT", "forged.by.client")
	if status != http.StatusOK {
		t.Fatalf("whoami: %d", status)
	}
	// The demo app fetched the JWKS from the gateway and verified.
	if id.JWT == nil || !id.JWT.Verified {
		t.Fatalf("the demo app did not verify the token: %+v", id.JWT)
	}
	tok := id.Headers["X-Sso-Jwt"]
	if tok == "" || tok == "forged.by.client" {
		t.Fatalf("X-SSO-JWT = %q", tok)
	}

	// And so does this test, independently.
	code, jwks, h := fetchJWKS(t)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/jwk-set+json") {
		t.Fatalf("JWKS: %d %s", code, h.Get("Content-Type"))
	}
	if strings.Contains(string(jwks), `"d"`) {
		t.Fatalf("JWKS publishes a private key: %s", jwks)
	}
	c, err := upstreamjwt.Verify(tok, jwks, env.GatewayURL, env.GatewayURL, time.Now())
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	hd := id.Headers
	if c.Subject != hd["X-Sso-User-Id"] || c.IdPSubject != hd["X-Sso-Subject"] || c.Email != demo.AliceEmail ||
		c.Org != demo.OrgID || c.AuthMethod != "saml" || c.Name != hd["X-Sso-Name"] ||
		strings.Join(c.Groups, ",") != hd["X-Sso-Groups"] || c.Subject == "" {
		t.Errorf("claims %+v do not match headers %v", c, hd)
	}
	if life := c.Expiry.Time().Sub(c.IssuedAt.Time()); life > time.Minute {
		t.Errorf("token lives %v", life)
	}

	// Minted once per re-check: the next request reuses it.
	_, again, _ := b.whoamiFull()
	if again.Headers["X-Sso-Jwt"] != tok {
		t.Errorf("a new token for a request that reused the re-check")
	}

	// No session: neither a token nor the client's copy reaches the app.
	anon := newBrowser(t)
	if s, _ := anon.whoami("X-SSO-JWT", "forged", "X_SSO_JWT", "forged"); s != http.StatusUnauthorized {
		t.Errorf("no session: %d", s)
	}
}

// TestSignedIdentityOffByDefault: without signed_identity there is no
// token, no JWKS, and a client's X-SSO-JWT is still removed.
func TestSignedIdentityOffByDefault(t *testing.T) {
	loadGatewayConfig(t, map[string]any{"handler": "sso_gateway", "public_paths": []string{"/public/*"}}, nil)
	t.Cleanup(func() { loadGatewayConfig(t, map[string]any{"handler": "sso_gateway"}, nil) })
	b := newBrowser(t)
	b.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	_, id, _ := b.whoamiFull("X-SSO-JWT", "forged")
	if v, ok := id.Headers["X-Sso-Jwt"]; ok {
		t.Errorf("X-SSO-JWT reached the app without signed_identity: %q", v)
	}
	if code, _, _ := fetchJWKS(t); code != http.StatusNotFound {
		t.Errorf("JWKS without signed_identity: %d", code)
	}
	req, _ := http.NewRequest(http.MethodGet, env.GatewayURL+"/public/x", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-SSO-JWT", "forged")
	p := newBrowser(t).do(req)
	if strings.Contains(p.body, "forged") {
		t.Errorf("client's X-SSO-JWT reached a public path: %s", p.body)
	}
}
