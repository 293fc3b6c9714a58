package samlsp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// MaxXMLDepth caps how deeply a SAML response or IdP metadata document
// nests elements. Real responses nest about 10 deep (Response, Assertion,
// AttributeStatement, Attribute, AttributeValue; Signature, SignedInfo,
// Reference, Transforms, Transform), metadata about 8 (aggregates a few
// more).
const MaxXMLDepth = 32

// CheckXMLDepth refuses a document nesting elements more than max deep.
// It reads tokens only (encoding/xml's tokenizer keeps no tree and does
// not recurse), so it runs before the parsers that build a tree and
// recurse over it (etree, the signature canonicalizer, xml.Unmarshal),
// which a stranger's document would otherwise drive as deep as its size
// allows.
func CheckXMLDepth(raw []byte, max int) error {
	dec := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	for {
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("malformed XML: %v", err)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
			if depth > max {
				return fmt.Errorf("XML nests elements more than %d deep", max)
			}
		case xml.EndElement:
			depth--
		}
	}
}
