package upstream

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ssogate/ssogate/caddymodule/upstreamjwt"
)

// Verifier checks the gateway's signed identity (signed_identity) the way
// an application should: the token in Header, signed by a key of the
// gateway's JWKS, for this Audience, from this Issuer, not expired.
type Verifier struct {
	Header   string // default X-SSO-JWT
	JWKSURL  string // the gateway's <base_url>/sso/.well-known/jwks.json
	Issuer   string // the gateway's base_url
	Audience string // what the gateway's signed_identity audience names

	Client *http.Client // default: a client with a 10 s timeout

	mu      sync.Mutex
	jwks    []byte
	fetched time.Time
}

// JWTResult is what the page and the JSON answer show about the token.
type JWTResult struct {
	Present  bool                `json:"present"`
	Verified bool                `json:"verified"`
	Error    string              `json:"error,omitempty"`
	Claims   *upstreamjwt.Claims `json:"claims,omitempty"`
}

// minRefetch keeps a stream of tokens with unknown key ids from making
// the application hammer the gateway's JWKS.
const minRefetch = 10 * time.Second

func (v *Verifier) header() string {
	if v.Header == "" {
		return "X-SSO-JWT"
	}
	return v.Header
}

// Check verifies the request's token.
func (v *Verifier) Check(r *http.Request) *JWTResult {
	tok := r.Header.Get(v.header())
	if tok == "" {
		return &JWTResult{}
	}
	res := &JWTResult{Present: true}
	c, err := v.verify(tok)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Verified, res.Claims = true, c
	return res
}

func (v *Verifier) verify(tok string) (*upstreamjwt.Claims, error) {
	kid, err := upstreamjwt.KeyIDOf(tok)
	if err != nil {
		return nil, fmt.Errorf("not a signed token: %w", err)
	}
	jwks, err := v.keys(kid)
	if err != nil {
		return nil, err
	}
	return upstreamjwt.Verify(tok, jwks, v.Issuer, v.Audience, time.Now())
}

// keys returns the cached JWKS, fetching it again when it lacks kid (the
// gateway rotated its key) and the last fetch is not too recent.
func (v *Verifier) keys(kid string) ([]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.jwks != nil {
		if ids, err := upstreamjwt.KeyIDs(v.jwks); err == nil && slices.Contains(ids, kid) {
			return v.jwks, nil
		}
		if time.Since(v.fetched) < minRefetch {
			return v.jwks, nil
		}
	}
	c := v.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Get(v.JWKSURL)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10+1))
	if err != nil {
		return nil, fmt.Errorf("reading JWKS: %w", err)
	}
	if len(body) > 64<<10 {
		return nil, errors.New("JWKS larger than 64 KiB")
	}
	v.jwks, v.fetched = body, time.Now()
	return body, nil
}
