package caddymodule_test

import (
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
)

// TestFlashesDoNotPinFormBodies: a refused configurator post keeps its
// input for the page its redirect leads to. Go's form parser returns
// substrings of the whole body for values with nothing to decode, so a
// kept 3-byte entity ID held on to the whole 1 MiB form until the flash
// expired, and an org admin with many sessions could pin gigabytes.
func TestFlashesDoNotPinFormBodies(t *testing.T) {
	reloadWithSSO(t, fastHashing)
	org := uniqueOrg("flash-pin")
	const sessions = 16
	first, owner := orgAdminBrowser(t, org, org+".test", "127.0.0.78")
	browsers := []*browser{first}
	for len(browsers) < sessions {
		b := newBrowserFrom(t, "127.0.0.78")
		if p := b.backupSignIn(owner, strongPassword, org); p.status != http.StatusSeeOther {
			t.Fatalf("sign-in %d: %d\n%s", len(browsers), p.status, p.body)
		}
		browsers = append(browsers, b)
	}
	// Started, so that the page has the SAML step's form to show the
	// input in.
	if p := first.post(env.GatewayURL+"/sso/admin/start", formByAction(t, first.get(env.GatewayURL+"/sso/admin/").body, "/sso/admin/start")); p.status != http.StatusSeeOther {
		t.Fatalf("start: %d", p.status)
	}
	csrfs := make([]string, sessions)
	for i, b := range browsers {
		p := b.get(env.GatewayURL + "/sso/admin/")
		if p.status != http.StatusOK {
			t.Fatalf("admin page: %d", p.status)
		}
		csrfs[i] = formByAction(t, p.body, "/sso/admin/saml").Get("csrf")
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var last string
	for i, b := range browsers {
		// Nothing in the body needs decoding, so every value is a
		// substring of it.
		form := "csrf=" + url.QueryEscape(csrfs[i]) + "&mode=manual&entity_id=abc&pad=" + strings.Repeat("A", 1<<20-1024)
		req, _ := http.NewRequest(http.MethodPost, env.GatewayURL+"/sso/admin/saml", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "text/html")
		if p := b.do(req); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/sso/admin/?r=") {
			t.Fatalf("refused SAML post %d: %d %q\n%.500s", i, p.status, p.location, p.body)
		} else {
			last = p.location
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew by %d KiB holding %d refused posts' flashes", grew>>10, sessions)
	// Pinned bodies would add 16 MiB; what the flashes themselves hold
	// is a few KiB.
	if grew > 6<<20 {
		t.Errorf("heap grew by %d MiB while %d flashes of a 3-byte entity ID are kept: the form bodies are pinned", grew>>20, sessions)
	}

	// The input is still shown again with the error, once.
	if p := browsers[sessions-1].get(env.GatewayURL + last); p.status != http.StatusOK || !strings.Contains(p.body, `value="abc"`) {
		t.Errorf("the refused post's page does not show its input again: %d\n%s", p.status, p.body)
	}
}
