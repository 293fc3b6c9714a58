package orgs

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestMetadataURL imports IdP settings from a metadata URL served over TLS
// by a test server whose CA the Service is told to trust.
func TestMetadataURL(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	doc, idp := idpMetadata(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metadata", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = w.Write([]byte(doc))
	})
	mux.HandleFunc("GET /moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/metadata", http.StatusFound)
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	e.svc.HTTPClient = srv.Client()

	for _, path := range []string{"/metadata", "/moved"} {
		org := e.must(http.StatusOK, "PUT", "/sso/orgs/acme/idp", map[string]string{"metadata_url": srv.URL + path}).object(t)
		got := org["idp"].(map[string]any)
		if got["entity_id"] != idp.entityID || got["sso_url"] != idp.ssoURL || got["metadata_url"] != srv.URL+path {
			t.Errorf("%s: idp = %v", path, got)
		}
		if certs := got["certificates"].([]any); len(certs) != 1 || certs[0] != certPEM(idp.cert) {
			t.Errorf("%s: certificates = %v", path, certs)
		}
	}
	events, err := e.store.ListAudit("acme", 1)
	if err != nil || len(events) != 1 || events[0].Action != "idp.set" || events[0].Details["source"] != "metadata_url" {
		t.Errorf("audit = %+v, %v", events, err)
	}

	// The Service's own fetch, as a UI preview would use it.
	in, err := e.svc.FetchIdPMetadata(context.Background(), srv.URL+"/metadata")
	if err != nil || in.EntityID != idp.entityID || in.MetadataURL != srv.URL+"/metadata" || len(in.Certificates) != 1 {
		t.Errorf("FetchIdPMetadata = %+v, %v", in, err)
	}
}

// TestMetadataURLRefusals: every way a metadata URL can be wrong is a 400
// on metadata_url that says why and changes nothing.
func TestMetadataURLRefusals(t *testing.T) {
	e := newEnv(t)
	e.readyOrg("acme", "acme.com")
	doc, _ := idpMetadata(t)

	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(doc))
	}))
	defer plain.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metadata", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(doc)) })
	mux.HandleFunc("GET /huge", func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("<!-- padding -->", 1024))
		for n := 0; n <= maxMetadataLen; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /to-http", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/metadata", http.StatusFound)
	})
	mux.HandleFunc("GET /loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("GET /html", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html><body>Sign in</body></html>"))
	})
	mux.HandleFunc("GET /missing", http.NotFound)
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	e.svc.HTTPClient = srv.Client()

	cases := []struct {
		name string
		body map[string]any
		want string
	}{
		{"plain http to a public host", map[string]any{"metadata_url": "http://idp.example.org/metadata"}, "must use https"},
		{"a file URL", map[string]any{"metadata_url": "file:///etc/passwd"}, "not an absolute URL"},
		{"another scheme", map[string]any{"metadata_url": "ftp://idp.example.org/metadata"}, "must use https"},
		{"not a URL", map[string]any{"metadata_url": "idp metadata"}, "not an absolute URL"},
		{"with fields as well", map[string]any{"metadata_url": srv.URL + "/metadata", "entity_id": "urn:x"}, "not several"},
		{"with metadata XML as well", map[string]any{"metadata_url": srv.URL + "/metadata", "metadata_xml": doc}, "not several"},
		{"too large", map[string]any{"metadata_url": srv.URL + "/huge"}, "too large"},
		{"redirect to http", map[string]any{"metadata_url": srv.URL + "/to-http"}, "not https"},
		{"redirect loop", map[string]any{"metadata_url": srv.URL + "/loop"}, "redirects"},
		{"not metadata", map[string]any{"metadata_url": srv.URL + "/html"}, "not SAML metadata"},
		{"not found", map[string]any{"metadata_url": srv.URL + "/missing"}, "404"},
		{"nobody listening", map[string]any{"metadata_url": "https://127.0.0.1:1/metadata"}, "failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot()
			r := e.must(http.StatusBadRequest, "PUT", "/sso/orgs/acme/idp", c.body).object(t)
			if r["field"] != "metadata_url" || !strings.Contains(r["error"].(string), c.want) {
				t.Errorf("refusal = %v, want it to mention %q", r, c.want)
			}
			if e.snapshot() != before {
				t.Error("a refused metadata URL changed the store")
			}
		})
	}

	// A certificate the client does not trust (loopback allowed, as for a
	// gateway whose base URL is on loopback).
	e.svc.HTTPClient = nil
	e.svc.AllowPrivateMetadataHosts = true
	r := e.must(http.StatusBadRequest, "PUT", "/sso/orgs/acme/idp", map[string]any{"metadata_url": srv.URL + "/metadata"}).object(t)
	if !strings.Contains(r["error"].(string), "certificate") {
		t.Errorf("untrusted server: %v", r)
	}

	// Plain http is fine on loopback, as for SSO URLs (local test IdPs).
	e.must(http.StatusOK, "PUT", "/sso/orgs/acme/idp", map[string]any{"metadata_url": plain.URL + "/metadata"})
}

// TestMetadataURLTimeout: a server that never answers makes the fetch give
// up when its deadline passes, with a message that says so.
func TestMetadataURLTimeout(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	e.svc.HTTPClient = srv.Client()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.svc.FetchIdPMetadata(ctx, srv.URL+"/metadata")
	if ae, ok := AsError(err); !ok || ae.Field != "metadata_url" || !strings.Contains(ae.Message, "timed out") {
		t.Errorf("slow server: %v", err)
	}
	if e.svc.metadataClient().Timeout != metadataFetchTimeout || e.svc.HTTPClient.Timeout != 0 {
		t.Error("the fetch's own bound is not applied to a copy of the client")
	}
}

// An org admin must not make the gateway fetch from its own network: the
// default client refuses loopback (here: the plain http server on
// 127.0.0.1, which the URL rules alone would allow) unless the operator
// allows private hosts.
func TestMetadataURLRefusesPrivateHosts(t *testing.T) {
	e := newEnv(t)
	e.readyOrg("acme", "acme.com")
	doc, _ := idpMetadata(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(doc))
	}))
	defer srv.Close()

	e.svc.HTTPClient = nil
	e.svc.AllowPrivateMetadataHosts = false
	_, err := e.svc.FetchIdPMetadata(context.Background(), srv.URL+"/metadata")
	if err == nil || !strings.Contains(err.Error(), "loopback, private or link-local") {
		t.Fatalf("fetch from loopback: %v", err)
	}
	e.svc.AllowPrivateMetadataHosts = true
	in, err := e.svc.FetchIdPMetadata(context.Background(), srv.URL+"/metadata")
	if err != nil || in.EntityID == "" {
		t.Fatalf("fetch with private hosts allowed: %+v, %v", in, err)
	}
}
