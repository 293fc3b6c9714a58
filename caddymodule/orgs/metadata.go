package orgs

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/caddymodule/samlsp"
)

// parseIdPMetadata reads the IdP's entity out of a metadata document: an
// <EntityDescriptor>, or an <EntitiesDescriptor> aggregate that holds
// exactly one entity with an IDPSSODescriptor (with several, which one the
// admin means cannot be guessed).
//
// Document type declarations are refused outright, as they are on every
// SAML message ssogate reads: metadata has no use for them, and refusing
// them closes the door on entity tricks whatever the parser.
func parseIdPMetadata(data []byte) (*saml.EntityDescriptor, error) {
	root, err := rootElement(data)
	if err != nil {
		return nil, err
	}
	// xml.Unmarshal recurses per nested element, and so does idpEntities
	// over nested aggregates: bound the nesting first.
	if err := samlsp.CheckXMLDepth(data, samlsp.MaxXMLDepth); err != nil {
		return nil, fmt.Errorf("the metadata is not usable: %v", err)
	}
	switch root {
	case xml.Name{Space: "urn:oasis:names:tc:SAML:2.0:metadata", Local: "EntityDescriptor"}:
		ed := &saml.EntityDescriptor{}
		if err := xml.Unmarshal(data, ed); err != nil {
			return nil, fmt.Errorf("cannot read the metadata: %v", err)
		}
		return ed, nil
	case xml.Name{Space: "urn:oasis:names:tc:SAML:2.0:metadata", Local: "EntitiesDescriptor"}:
		all := &saml.EntitiesDescriptor{}
		if err := xml.Unmarshal(data, all); err != nil {
			return nil, fmt.Errorf("cannot read the metadata: %v", err)
		}
		idps := idpEntities(all, nil)
		switch len(idps) {
		case 0:
			return nil, errors.New("the metadata describes no identity provider (no IDPSSODescriptor)")
		case 1:
			return idps[0], nil
		}
		return nil, fmt.Errorf("the metadata describes %d identity providers; give the metadata of yours only", len(idps))
	}
	return nil, fmt.Errorf("the document is not SAML metadata (root element <%s>)", root.Local)
}

// rootElement returns the name of the document's first element, refusing
// any DOCTYPE or other directive before it.
func rootElement(data []byte) (xml.Name, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return xml.Name{}, errors.New("the document holds no XML element; give the IdP's metadata XML")
		}
		if err != nil {
			return xml.Name{}, fmt.Errorf("the metadata is not well-formed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return xml.Name{}, errors.New("the metadata contains a DOCTYPE or other directive, which is not allowed")
		case xml.StartElement:
			return t.Name, nil
		}
	}
}

func idpEntities(all *saml.EntitiesDescriptor, found []*saml.EntityDescriptor) []*saml.EntityDescriptor {
	for i := range all.EntityDescriptors {
		if len(all.EntityDescriptors[i].IDPSSODescriptors) > 0 {
			found = append(found, &all.EntityDescriptors[i])
		}
	}
	for i := range all.EntitiesDescriptors {
		found = idpEntities(&all.EntitiesDescriptors[i], found)
	}
	return found
}
