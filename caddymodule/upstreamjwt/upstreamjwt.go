// Package upstreamjwt signs the identity the gateway passes to the
// application as a short-lived JWT (ES256), and publishes the public keys
// as a JWKS, so that an application can trust the identity without
// trusting the network between gateway and app.
//
// Keys rotate without downtime and without coordination between replicas:
// time is cut into periods, and each period's key is created on first use
// and kept in the store (GetOrCreateSecret is transactional, so every
// replica signs with the same key). Tokens are signed with the current
// period's key; the JWKS lists the previous, current and next keys, so a
// verifier that caches the set already has the next key when signing
// moves to it, and still has the previous key while tokens signed with it
// are valid (they live a minute; a period is days).
//
// JOSE is go-jose/v4, not hand-rolled.
package upstreamjwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Lifetime is how long a token is valid: "within a minute", so that a
// token copied out of a log or a request is soon useless.
const Lifetime = time.Minute

// DefaultPeriod is how long one signing key is used.
const DefaultPeriod = 7 * 24 * time.Hour

// Algorithm is the signature algorithm of every token.
const Algorithm = jose.ES256

// Secrets keeps the keys; *store.Store implements it.
type Secrets interface {
	GetOrCreateSecret(name string, generate func() ([]byte, error)) ([]byte, error)
}

// Keyring holds the signing keys, one per period.
type Keyring struct {
	secrets Secrets
	period  time.Duration

	mu   sync.Mutex
	keys map[int64]jose.JSONWebKey // private keys by period, as loaded
}

// NewKeyring returns a keyring over secrets; period 0 means DefaultPeriod.
func NewKeyring(secrets Secrets, period time.Duration) *Keyring {
	if period <= 0 {
		period = DefaultPeriod
	}
	return &Keyring{secrets: secrets, period: period, keys: map[int64]jose.JSONWebKey{}}
}

func (k *Keyring) periodOf(t time.Time) int64 {
	return t.Unix() / int64(k.period/time.Second)
}

// key returns period p's private key, creating it in the store if no
// replica has yet.
func (k *Keyring) key(p int64) (jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if jwk, ok := k.keys[p]; ok {
		return jwk, nil
	}
	raw, err := k.secrets.GetOrCreateSecret("upstream-jwt-es256/"+strconv.FormatInt(p, 10), generateKey)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("upstream JWT signing key: %w", err)
	}
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != "PRIVATE KEY" {
		return jose.JSONWebKey{}, errors.New("upstream JWT signing key in store is not a PEM private key")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("upstream JWT signing key: %w", err)
	}
	priv, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return jose.JSONWebKey{}, errors.New("upstream JWT signing key in store is not a P-256 key")
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: string(Algorithm), Use: "sig"}
	// The RFC 7638 thumbprint: the same key gets the same kid on every
	// replica, without storing one.
	pub := jwk.Public()
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("upstream JWT key thumbprint: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	// Periods that have passed are never signed with again; forget them
	// so the map stays at a handful of keys.
	for q := range k.keys {
		if q < p-1 {
			delete(k.keys, q)
		}
	}
	k.keys[p] = jwk
	return jwk, nil
}

func generateKey() ([]byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// JWKS is the public key set at now: the previous, current and next
// period's keys.
func (k *Keyring) JWKS(now time.Time) ([]byte, error) {
	p := k.periodOf(now)
	set := jose.JSONWebKeySet{}
	for _, q := range []int64{p, p + 1, p - 1} {
		jwk, err := k.key(q)
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, jwk.Public())
	}
	return json.Marshal(set)
}

// Identity is what a token says about the user.
type Identity struct {
	UserID            string // sub: ssogate's id, unique across organizations
	Subject           string // the IdP's identifier, qualified by the org ("<org>/<id>")
	PreferredUsername string
	Email             string
	Name              string
	Groups            []string
	Org               string
	AuthMethod        string
}

// Claims are the token's claims.
type Claims struct {
	jwt.Claims
	Email             string   `json:"email,omitempty"`
	Name              string   `json:"name,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Groups            []string `json:"groups"`
	Org               string   `json:"org"`
	AuthMethod        string   `json:"auth_method"`
	IdPSubject        string   `json:"idp_sub,omitempty"`
}

// Signer mints tokens for one audience.
type Signer struct {
	ring     *Keyring
	issuer   string
	audience jwt.Audience
}

// NewSigner returns a signer whose tokens carry iss issuer (the gateway's
// base URL) and aud audience.
func NewSigner(ring *Keyring, issuer string, audience []string) (*Signer, error) {
	if issuer == "" || len(audience) == 0 {
		return nil, errors.New("upstream JWT: issuer and audience are required")
	}
	return &Signer{ring: ring, issuer: issuer, audience: jwt.Audience(audience)}, nil
}

// Mint signs id at now with the current period's key.
func (s *Signer) Mint(id Identity, now time.Time) (string, error) {
	jwk, err := s.ring.key(s.ring.periodOf(now))
	if err != nil {
		return "", err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: Algorithm, Key: jwk},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("upstream JWT signer: %w", err)
	}
	groups := id.Groups
	if groups == nil {
		groups = []string{}
	}
	c := Claims{
		Claims: jwt.Claims{
			Issuer:   s.issuer,
			Subject:  id.UserID,
			Audience: s.audience,
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(Lifetime)),
		},
		Email: id.Email, Name: id.Name, PreferredUsername: id.PreferredUsername,
		Groups: groups, Org: id.Org, AuthMethod: id.AuthMethod, IdPSubject: id.Subject,
	}
	tok, err := jwt.Signed(sig).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing upstream JWT: %w", err)
	}
	return tok, nil
}

// Verify checks a token against a JWKS the way an application should:
// ES256 only, signature by a key in the set, iss, aud and exp. It is what
// the demo application and the tests use.
func Verify(token string, jwks []byte, issuer, audience string, now time.Time) (*Claims, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, fmt.Errorf("reading JWKS: %w", err)
	}
	t, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{Algorithm})
	if err != nil {
		return nil, fmt.Errorf("parsing token: %w", err)
	}
	if len(t.Headers) != 1 || t.Headers[0].KeyID == "" {
		return nil, errors.New("token has no key id")
	}
	keys := set.Key(t.Headers[0].KeyID)
	if len(keys) == 0 {
		return nil, fmt.Errorf("token's key %q is not in the JWKS", t.Headers[0].KeyID)
	}
	var c Claims
	if err := t.Claims(keys[0].Key, &c); err != nil {
		return nil, fmt.Errorf("token signature: %w", err)
	}
	if err := c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{audience}, Time: now}, 0); err != nil {
		return nil, fmt.Errorf("token claims: %w", err)
	}
	if c.IssuedAt == nil || c.Expiry == nil || c.Expiry.Time().Sub(c.IssuedAt.Time()) > Lifetime {
		return nil, errors.New("token lives longer than a minute")
	}
	return &c, nil
}

// KeyIDs lists the kids of a JWKS, for tests and diagnostics.
func KeyIDs(jwks []byte) ([]string, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, err
	}
	ids := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		ids[i] = k.KeyID
	}
	return ids, nil
}

// KeyIDOf is the kid in a token's header, without checking anything.
func KeyIDOf(token string) (string, error) {
	t, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{Algorithm})
	if err != nil {
		return "", err
	}
	if len(t.Headers) != 1 {
		return "", errors.New("not one signature")
	}
	return t.Headers[0].KeyID, nil
}
