package upstreamjwt

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

var alice = Identity{UserID: "u-1", Subject: "00u1", PreferredUsername: "alice@acme.com", Email: "alice@acme.com",
	Name: "Alice", Groups: []string{"admins"}, Org: "acme", AuthMethod: "saml"}

const iss, aud = "https://app.example.com", "https://app.example.com"

func TestTokenCarriesIdentityAndVerifies(t *testing.T) {
	ring := NewKeyring(openStore(t), 0)
	s, err := NewSigner(ring, iss, []string{aud})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := s.Mint(alice, now)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := ring.JWKS(now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(tok, jwks, iss, aud, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "u-1" || c.IdPSubject != "00u1" || c.Email != alice.Email || c.Name != "Alice" ||
		!slices.Equal(c.Groups, alice.Groups) || c.Org != "acme" || c.AuthMethod != "saml" ||
		c.PreferredUsername != alice.PreferredUsername {
		t.Errorf("claims %+v", c)
	}
	if got := c.Expiry.Time().Sub(c.IssuedAt.Time()); got != Lifetime {
		t.Errorf("lifetime %v", got)
	}
	// The header says ES256 and JWT.
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	var h map[string]string
	_ = json.Unmarshal(hdr, &h)
	if h["alg"] != "ES256" || h["typ"] != "JWT" || h["kid"] == "" {
		t.Errorf("header %v", h)
	}
	// The JWKS holds public keys only.
	if strings.Contains(string(jwks), `"d":`) {
		t.Fatalf("JWKS has a private key: %s", jwks)
	}

	for name, check := range map[string]func() error{
		"expired": func() error { _, err := Verify(tok, jwks, iss, aud, now.Add(Lifetime+time.Second)); return err },
		"other audience": func() error {
			_, err := Verify(tok, jwks, iss, "https://other.example.com", now)
			return err
		},
		"other issuer": func() error { _, err := Verify(tok, jwks, "https://evil.example", aud, now); return err },
		"tampered": func() error {
			parts := strings.Split(tok, ".")
			body, _ := base64.RawURLEncoding.DecodeString(parts[1])
			body = []byte(strings.Replace(string(body), `"acme"`, `"evil"`, 1))
			parts[1] = base64.RawURLEncoding.EncodeToString(body)
			_, err := Verify(strings.Join(parts, "."), jwks, iss, aud, now)
			return err
		},
	} {
		if check() == nil {
			t.Errorf("%s token verified", name)
		}
	}
}

// TestKeyRotationWithoutDowntime: across a period boundary, a token signed
// just before still verifies against the JWKS served just after; the next
// period's key is published before it signs anything; an old period's key
// leaves the set.
func TestKeyRotationWithoutDowntime(t *testing.T) {
	st := openStore(t)
	period := time.Hour
	ring := NewKeyring(st, period)
	s, _ := NewSigner(ring, iss, []string{aud})
	boundary := time.Unix(1_900_000_000/3600*3600+3600, 0)
	before := boundary.Add(-time.Second)

	old, err := s.Mint(alice, before)
	if err != nil {
		t.Fatal(err)
	}
	jwksBefore, _ := ring.JWKS(before)
	fresh, err := s.Mint(alice, boundary)
	if err != nil {
		t.Fatal(err)
	}
	oldKid, _ := KeyIDOf(old)
	newKid, _ := KeyIDOf(fresh)
	if oldKid == newKid {
		t.Fatal("the key did not rotate at the period boundary")
	}
	idsBefore, _ := KeyIDs(jwksBefore)
	if !slices.Contains(idsBefore, newKid) {
		t.Errorf("next key %s not published before use: %v", newKid, idsBefore)
	}
	jwksAfter, _ := ring.JWKS(boundary.Add(time.Second))
	if _, err := Verify(old, jwksAfter, iss, aud, boundary.Add(time.Second)); err != nil {
		t.Errorf("token signed before the rotation no longer verifies: %v", err)
	}
	if _, err := Verify(fresh, jwksBefore, iss, aud, boundary); err != nil {
		t.Errorf("a verifier holding the earlier JWKS cannot verify the new key's token: %v", err)
	}
	idsLater, _ := ring.JWKS(boundary.Add(2 * period))
	if ids, _ := KeyIDs(idsLater); slices.Contains(ids, oldKid) {
		t.Errorf("a key two periods old is still published: %v", ids)
	}

	// Another replica (another keyring over the same store) signs with
	// the same key.
	other, _ := NewSigner(NewKeyring(st, period), iss, []string{aud})
	tok, _ := other.Mint(alice, boundary)
	if kid, _ := KeyIDOf(tok); kid != newKid {
		t.Errorf("replicas disagree on the key: %s vs %s", kid, newKid)
	}
}

func TestSignerNeedsIssuerAndAudience(t *testing.T) {
	ring := NewKeyring(openStore(t), 0)
	if _, err := NewSigner(ring, "", []string{aud}); err == nil {
		t.Error("no issuer accepted")
	}
	if _, err := NewSigner(ring, iss, nil); err == nil {
		t.Error("no audience accepted")
	}
}
