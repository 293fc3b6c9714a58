package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/upstreamjwt"
)

// SignedIdentity sends the identity to the upstream a second time, as a
// short-lived JWT signed by the gateway (ES256), so that the application
// can check that it came from the gateway instead of trusting the network
// between them. The public keys are at <prefix>/.well-known/jwks.json.
type SignedIdentity struct {
	// Header carrying the token. Default: X-SSO-JWT.
	Header string `json:"header,omitempty"`

	// The token's `aud`: who the token is for; the application checks it
	// is among them. Default: the sso app's base_url.
	Audience []string `json:"audience,omitempty"`
}

// jwksPath is where, under the prefix, the public keys are published.
const jwksPath = "/.well-known/jwks.json"

// provisionSignedIdentity applies defaults; call after placeholders are
// expanded.
func (g *Gateway) provisionSignedIdentity() {
	si := g.SignedIdentity
	if si == nil {
		return
	}
	if si.Header == "" {
		si.Header = DefaultJWTHeader
	}
	si.Header = http.CanonicalHeaderKey(si.Header)
	if len(si.Audience) == 0 {
		si.Audience = []string{g.issuer()}
	}
}

// issuer is the tokens' `iss`: the gateway's base URL.
func (g *Gateway) issuer() string {
	return strings.TrimSuffix(g.app.baseURL.String(), "/")
}

func (g *Gateway) validateSignedIdentity() error {
	si := g.SignedIdentity
	if si == nil {
		return nil
	}
	if err := checkHeaderName("signed_identity header", si.Header); err != nil {
		return err
	}
	for i, name := range g.headers.list() {
		if name != "" && name == si.Header {
			return fmt.Errorf("signed_identity header %q: already used by header %s", si.Header, identityFieldNames[i%identityFields])
		}
	}
	for _, a := range si.Audience {
		if strings.TrimSpace(a) == "" {
			return errors.New("signed_identity audience: empty value")
		}
	}
	return nil
}

// mintedJWT is a token and when to mint the next one.
type mintedJWT struct {
	token   string
	refresh time.Time
}

// signedToken returns the session's token, minting one when the re-check
// that made v has none yet or its token is past half its life (a re-check
// outcome can be reused for longer than a token lives). Concurrent
// requests may both mint; either token is good.
func (g *Gateway) signedToken(st *gatewayState, v *identityValues) (string, error) {
	now := time.Now()
	if m := v.jwt.Load(); m != nil && now.Before(m.refresh) {
		return m.token, nil
	}
	tok, err := st.jwtSigner.Mint(v.jwtIdentity, now)
	if err != nil {
		return "", err
	}
	v.jwt.Store(&mintedJWT{token: tok, refresh: now.Add(upstreamjwt.Lifetime / 2)})
	return tok, nil
}

// serveJWKS publishes the public keys of the identity tokens.
func (g *Gateway) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if g.SignedIdentity == nil {
		g.message(w, http.StatusNotFound, "Page not found", "There is nothing at this address.", "", true)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	st, err := g.state()
	if err != nil {
		writeJSONError(w, http.StatusServiceUnavailable, "keys unavailable")
		return
	}
	body, err := st.jwtKeys.JWKS(time.Now())
	if err != nil {
		g.logger.Error("publishing the JWKS", zap.Error(err))
		writeJSONError(w, http.StatusServiceUnavailable, "keys unavailable")
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	// The set lists the next period's key a whole period ahead, so an
	// hour's caching never misses a rotation.
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(append(body, '\n'))
}

// jwtIdentity is the token's view of id.
func (id identity) jwtIdentity() upstreamjwt.Identity {
	return upstreamjwt.Identity{
		UserID: id.UserID, Subject: id.Subject, PreferredUsername: id.User, Email: id.Email,
		Name: id.Name, Groups: id.Groups, Org: id.Org, AuthMethod: id.AuthMethod,
	}
}
