package samlsp

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/examples/demoidp"
)

// TestDeepResponseIsRefused: a response nesting elements past
// MaxXMLDepth (here in an Extensions element a stranger controls, up to
// the size limit) is refused before etree or the signature code walks
// it; a response as deep as the cap still reaches the signature check.
func TestDeepResponseIsRefused(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, e.org(), nil)
	encoded, reqID := respond(t, p, e.idp, demoidp.RespondOptions{})
	raw := decode(t, encoded)
	inject := func(depth int) string {
		nest := strings.Repeat("<x>", depth) + strings.Repeat("</x>", depth)
		doc := bytes.Replace(raw, []byte("</samlp:Response>"), []byte(nest+"</samlp:Response>"), 1)
		return base64.StdEncoding.EncodeToString(doc)
	}
	// 60,000 deep: what the size limit allows.
	deep := inject(60_000)
	if len(deep) > MaxResponseSize {
		deep = inject((MaxResponseSize - len(encoded)) / 10)
	}
	_, err := p.ParseResponse(deep, []string{reqID})
	wantRefused(t, err, "nests elements more than")
	_, err = p.ParseResponse(inject(MaxXMLDepth), []string{reqID})
	wantRefused(t, err, "nests elements more than")
	// Within the cap the depth check passes; the response is refused for
	// what the injection did to its signature, which is checked later.
	_, err = p.ParseResponse(inject(MaxXMLDepth-2), []string{reqID})
	if err == nil || strings.Contains(err.Error(), "nests elements") {
		t.Fatalf("within the cap: %v", err)
	}
}

func TestCheckXMLDepth(t *testing.T) {
	for _, c := range []struct {
		doc  string
		max  int
		fail bool
	}{
		{`<a><b><c/></b></a>`, 3, false},
		{`<a><b><c/></b></a>`, 2, true},
		{`<a>` + strings.Repeat("<b/>", 1000) + `</a>`, 2, false},
		{`<a><b>`, 5, false}, // unbalanced: a later parser refuses it
		{`<a><!-- <b><c><d> --></a>`, 1, false},
		{`<a x="&lt;b&gt;"/>`, 1, false},
		{`<a><![CDATA[<b><c>]]></a>`, 1, false},
		{`<a`, 5, true},
	} {
		err := CheckXMLDepth([]byte(c.doc), c.max)
		if (err != nil) != c.fail {
			t.Errorf("%.40q max %d: %v", c.doc, c.max, err)
		}
	}
}
