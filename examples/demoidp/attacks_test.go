package demoidp

import (
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// signedShape is a response as RespondWith signs it for XSW: a signed
// Response (XSW1, 2) or a signed assertion (XSW3–8), not encrypted.
func signedShape(n int) *etree.Element {
	a := etree.NewElement("saml:Assertion")
	a.CreateAttr("ID", "id-a")
	a.CreateElement("saml:Issuer").SetText("idp")
	if XSWSigning(n) == SignAssertionOnly {
		a.CreateElement("ds:Signature").CreateElement("ds:SignedInfo")
	}
	a.CreateElement("saml:Subject").CreateElement("saml:NameID").SetText(aliceEmail)
	r := etree.NewElement("samlp:Response")
	r.CreateAttr("ID", "id-r")
	r.CreateElement("saml:Issuer").SetText("idp")
	if XSWSigning(n) == SignResponseOnly {
		r.CreateElement("ds:Signature").CreateElement("ds:SignedInfo")
	}
	r.AddChild(a)
	return r
}

// layout lists the tags and IDs from the root down to every NameID, with
// its text, so each variant's layout can be compared with SAML Raider's.
func layout(el *etree.Element, prefix string, out *[]string) {
	p := prefix + "/" + el.Tag
	if id := el.SelectAttrValue("ID", ""); id != "" {
		p += "[" + id + "]"
	}
	if el.Tag == "NameID" {
		*out = append(*out, p+"="+el.Text())
	}
	for _, c := range el.ChildElements() {
		layout(c, p, out)
	}
}

func TestXSWLayouts(t *testing.T) {
	const evil = "mallory@example.com"
	want := map[int][]string{
		1: {"/Response[_evil_response_ID]/Signature/Response[id-r]/Assertion[id-a]/Subject/NameID=" + aliceEmail,
			"/Response[_evil_response_ID]/Assertion[id-a]/Subject/NameID=" + evil},
		2: {"/Response[_evil_response_ID]/Response[id-r]/Assertion[id-a]/Subject/NameID=" + aliceEmail,
			"/Response[_evil_response_ID]/Assertion[id-a]/Subject/NameID=" + evil},
		3: {"/Response[id-r]/Assertion[_evil_assertion_ID]/Subject/NameID=" + evil,
			"/Response[id-r]/Assertion[id-a]/Subject/NameID=" + aliceEmail},
		4: {"/Response[id-r]/Assertion[_evil_assertion_ID]/Subject/NameID=" + evil,
			"/Response[id-r]/Assertion[_evil_assertion_ID]/Assertion[id-a]/Subject/NameID=" + aliceEmail},
		5: {"/Response[id-r]/Assertion[_evil_assertion_ID]/Subject/NameID=" + evil,
			"/Response[id-r]/Assertion[id-a]/Subject/NameID=" + aliceEmail},
		6: {"/Response[id-r]/Assertion[_evil_assertion_ID]/Signature/Assertion[id-a]/Subject/NameID=" + aliceEmail,
			"/Response[id-r]/Assertion[_evil_assertion_ID]/Subject/NameID=" + evil},
		7: {"/Response[id-r]/Extensions/Assertion[id-a]/Subject/NameID=" + evil,
			"/Response[id-r]/Assertion[id-a]/Subject/NameID=" + aliceEmail},
		8: {"/Response[id-r]/Assertion[id-a]/Signature/Object/Assertion[id-a]/Subject/NameID=" + aliceEmail,
			"/Response[id-r]/Assertion[id-a]/Subject/NameID=" + evil},
	}
	for n := 1; n <= 8; n++ {
		tamper, err := XSW(n, ReplaceText(aliceEmail, evil))
		if err != nil {
			t.Fatal(err)
		}
		root := signedShape(n)
		tamper(root)
		var got []string
		layout(root, "", &got)
		if strings.Join(got, "\n") != strings.Join(want[n], "\n") {
			t.Errorf("XSW%d layout:\n%s\nwant:\n%s", n, strings.Join(got, "\n"), strings.Join(want[n], "\n"))
		}
	}
	for _, n := range []int{0, 9} {
		if _, err := XSW(n, ReplaceText()); err == nil {
			t.Errorf("XSW(%d): want an error", n)
		}
	}
}

func TestSplitWithCommentAndStripSignatures(t *testing.T) {
	root := signedShape(3)
	SplitWithComment(aliceEmail+".evil", aliceEmail)(root) // no match: unchanged
	SplitWithComment(aliceEmail, "alice@")(root)
	StripSignatures(root)
	doc := etree.NewDocument()
	doc.SetRoot(root)
	out, _ := doc.WriteToString()
	if !strings.Contains(out, "alice@<!---->example.com") || strings.Contains(out, "Signature") {
		t.Errorf("got %s", out)
	}
}
