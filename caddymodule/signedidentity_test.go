package caddymodule

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/ssogate/ssogate/caddymodule/upstreamjwt"
)

// TestSignedIdentityFailureSetsNoIdentity: when the token cannot be
// signed, the request ends in a 503 that the site's handle_errors may
// proxy to the app; it must reach that point carrying no identity header
// and no identity placeholder, since no token vouches for them.
func TestSignedIdentityFailureSetsNoIdentity(t *testing.T) {
	f := newCacheFixture(t)
	// A key in the store that is no key: this period's and the next, so a
	// period boundary during the test changes nothing.
	p := time.Now().Unix() / int64(upstreamjwt.DefaultPeriod/time.Second)
	for _, q := range []int64{p, p + 1} {
		if _, err := f.st.GetOrCreateSecret("upstream-jwt-es256/"+strconv.FormatInt(q, 10),
			func() ([]byte, error) { return []byte("not a key"), nil }); err != nil {
			t.Fatal(err)
		}
	}
	f.g.SignedIdentity = &SignedIdentity{Header: DefaultJWTHeader, Audience: []string{"https://app.example.com"}}
	f.g.lazy.jwtKeys = upstreamjwt.NewKeyring(f.st, 0)
	signer, err := upstreamjwt.NewSigner(f.g.lazy.jwtKeys, "https://app.example.com", f.g.SignedIdentity.Audience)
	if err != nil {
		t.Fatal(err)
	}
	f.g.lazy.jwtSigner = signer

	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/api", nil)
	r.AddCookie(f.cookie)
	repl := caddy.NewReplacer()
	r = r.WithContext(contextWithReplacer(r, repl))
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("the request went on without its token")
		return nil
	})
	err = f.g.ServeHTTP(httptest.NewRecorder(), r, next)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("got %v, want a 503 handler error", err)
	}
	for _, name := range strippedHeaders(f.g.headers) {
		if v, ok := r.Header[name]; ok {
			t.Errorf("%s = %q set on a request that failed", name, v)
		}
	}
	for _, k := range replKeys {
		if v, ok := repl.Get(k); ok {
			t.Errorf("{%s} = %v set on a request that failed", k, v)
		}
	}
}
