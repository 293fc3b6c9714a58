package orgs

import (
	"strings"
	"testing"

	"github.com/ssogate/ssogate/caddymodule/samlsp"
)

// TestDeepMetadataIsRefused: metadata nesting elements past the cap (an
// aggregate of aggregates, up to the 1 MiB limit) is refused before
// xml.Unmarshal and idpEntities recurse over it; real metadata passes.
func TestDeepMetadataIsRefused(t *testing.T) {
	doc, _ := idpMetadata(t)
	if _, err := parseIdPMetadata([]byte(doc)); err != nil {
		t.Fatalf("real metadata: %v", err)
	}
	const open = `<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">`
	const close = `</EntitiesDescriptor>`
	body := strings.TrimPrefix(doc, `<?xml version="1.0" encoding="UTF-8"?>`)
	for _, depth := range []int{samlsp.MaxXMLDepth, (maxMetadataLen - len(doc)) / (len(open) + len(close))} {
		deep := strings.Repeat(open, depth) + body + strings.Repeat(close, depth)
		_, err := parseIdPMetadata([]byte(deep))
		if err == nil || !strings.Contains(err.Error(), "nests elements more than") {
			t.Fatalf("%d deep: %v", depth, err)
		}
	}
	// An aggregate a few levels deep is fine.
	deep := strings.Repeat(open, 3) + body + strings.Repeat(close, 3)
	if _, err := parseIdPMetadata([]byte(deep)); err != nil {
		t.Fatalf("3 aggregates deep: %v", err)
	}
}
