package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// The portable export: what `ssogate store export` writes and `ssogate
// store import` reads, on any backend, to back up organizations, move
// them between gateways, or move a deployment from Badger to PostgreSQL.
//
// It is JSON Lines. The first line is an ExportHeader; then one object per
// record, each with a "type" and the record's own fields (the JSON the
// store keeps); the last line is {"type":"end","records":N}, so that a
// truncated file is refused rather than half imported. In order:
//
//	secret         gateway-wide secret {name, value (base64)}: only with
//	               secrets, only in an export of every organization
//	audit          gateway-wide audit events (org_id empty): only in an
//	               export of every organization
//	org            an organization; the records of its section follow:
//	domain         its domains
//	user           its users (local accounts, SCIM and SAML users)
//	group          its groups, members (user IDs) included
//	deprovisioned  {org_id, kind, value, at}: an identifier a SCIM
//	               deprovisioning removed (kind user_name, external_id or
//	               email, value in the store's normalized form)
//	invitation     a pending set-password link (its token's hash): only
//	               with secrets
//	audit          its audit events
//	end            {records}: the number of lines between header and end
//
// Only records are exported, never indexes or counters: import writes the
// records through the same transactions that maintain those. Sessions
// (and the flashes kept for them), outstanding AuthnRequests, the replay
// cache, throttle counters and sign-in attempts are not exported: after
// an import, users sign in again.
//
// Secrets, exported only when asked (ExportOptions.WithSecrets): the
// gateway-wide secrets (session cookie keys, the SAML SP key pair, the
// upstream JWT signing keys), users' password hashes, organizations' SCIM
// token hashes and pending set-password links. Without them, local
// accounts need a new set-password link (`org reset-backup`, `org
// invite`), each organization a new SCIM token, and a gateway importing
// the file keeps its own keys (the SP certificate in the IdPs' metadata
// then changes).
//
// Import takes from a file only what belongs to its organizations unless
// told otherwise (ImportOptions): domains arrive pending, and the
// gateway-wide secrets and audit events are left out, since whoever can
// write the file would otherwise claim domains and keys for good.

// Export format identifiers.
const (
	ExportFormat  = "ssogate-export"
	ExportVersion = 1
)

const (
	// maxExportLine bounds one line of an export file, and so the memory
	// import needs for one record (a group of 100k members is ~4 MiB).
	maxExportLine = 64 << 20
	// importBatch is how many records of one kind one import transaction
	// writes: one synced commit per record would be the bottleneck.
	importBatch = 1000
	// importMemberChunk is how many members of a group one import
	// transaction adds; a huge group is written in several.
	importMemberChunk = 5000
)

// Record types of an export file.
const (
	recSecret        = "secret"
	recAudit         = "audit"
	recOrg           = "org"
	recDomain        = "domain"
	recUser          = "user"
	recGroup         = "group"
	recDeprovisioned = "deprovisioned"
	recInvitation    = "invitation"
	recEnd           = "end"
)

// deprovisioning marker kinds as the export names them (udel segments).
var udelKinds = map[string]string{
	"user_name":   udelUserName,
	"external_id": udelExternalID,
	"email":       udelEmail,
}

// ExportHeader is the first line of an export file.
type ExportHeader struct {
	Format     string    `json:"format"`  // ExportFormat
	Version    int       `json:"version"` // ExportVersion
	ExportedAt time.Time `json:"exported_at"`
	// Orgs lists the organizations the file holds, in order.
	Orgs []string `json:"orgs"`
	// All says the file is an export of the whole store: gateway-wide
	// records (secrets, gateway audit events) are included.
	All bool `json:"all"`
	// WithSecrets says secrets are included (see the package's export
	// documentation).
	WithSecrets bool `json:"with_secrets"`
}

// ExportOptions select what Export writes.
type ExportOptions struct {
	// Orgs limits the export to these organizations; empty: every
	// organization and the gateway-wide records.
	Orgs []string
	// WithSecrets includes secrets.
	WithSecrets bool
}

// ImportOptions adjust Import.
//
// What a file can claim beyond its own organizations (a domain verified
// for good, the gateway's keys, the gateway-wide audit trail) is imported
// only when asked: whoever can write or swap the file would otherwise
// take over a domain nobody verified, or the keys that sign every
// session. Moving one's own deployment asks for all three.
type ImportOptions struct {
	// Orgs limits the import to these organizations of the file; empty:
	// every organization in it.
	Orgs []string
	// Replace deletes organizations of the file that exist in the store
	// (with all their data) before importing them, and lets the file's
	// secrets overwrite the store's. Without it, either is refused.
	Replace bool
	// TrustDomains keeps the verified status of the file's domains (and
	// who verified them). Without it every domain is imported pending,
	// keeping its verification token, and ImportResult.PendingDomains
	// lists those that were verified in the file: the operator verifies
	// them again (their TXT records, still published, match) or vouches.
	TrustDomains bool
	// WithSecrets imports the gateway-wide secrets of an export of
	// everything. Without it they are left out and listed in
	// ImportResult.SkippedSecrets. Either way a file naming a secret the
	// gateway does not create (session-key, saml-sp-keypair,
	// upstream-jwt-es256/<period>) is refused.
	WithSecrets bool
	// GatewayAudit imports the gateway-wide audit events of an export of
	// everything; without it they are left out and counted.
	GatewayAudit bool
	// DryRun checks everything Import checks and returns what it would
	// write, writing nothing.
	DryRun bool
}

// ImportResult is what Import wrote (with DryRun: would write).
type ImportResult struct {
	// Stats counts the records written, by type (with DryRun: the
	// records of the file to be written).
	Stats ExportStats
	// Created and Replaced name the organizations imported, new ones and
	// ones that existed and were deleted first.
	Created, Replaced []string
	// Secrets names the gateway-wide secrets written (never their values).
	Secrets []string
	// PendingDomains are the domains the file has verified that were
	// imported pending (without TrustDomains), by organization and name.
	PendingDomains []ImportedDomain
	// SkippedSecrets names the file's gateway-wide secrets left out
	// (without WithSecrets); SkippedGatewayAudit counts its gateway-wide
	// audit events left out (without GatewayAudit).
	SkippedSecrets      []string
	SkippedGatewayAudit int
}

// ImportedDomain is a domain an import wrote pending although the file
// had it verified.
type ImportedDomain struct {
	Org        string `json:"org"`
	Name       string `json:"domain"`
	VerifiedBy string `json:"verified_by,omitempty"` // as the file said
}

// gatewaySecretName tells whether name is one of the gateway-wide
// secrets the gateway creates (GetOrCreateSecret callers: the session
// cookie key in caddymodule/app.go, the SAML SP key pair in
// caddymodule/spkey.go, the upstream JWT signing key of each period in
// caddymodule/upstreamjwt). An import writes no other name: a secret the
// gateway never reads is at best junk and at worst a key a later
// version would trust.
func gatewaySecretName(name string) bool {
	switch name {
	case "session-key", "saml-sp-keypair", thrSecretName:
		return true
	}
	period, ok := strings.CutPrefix(name, "upstream-jwt-es256/")
	if !ok || period == "" || len(period) > 19 {
		return false
	}
	for _, c := range period {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ExportStats counts the records of an export or import, by type.
type ExportStats map[string]int

type secretRecord struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

type deprovisionedRecord struct {
	Type  string    `json:"type"`
	OrgID string    `json:"org_id"`
	Kind  string    `json:"kind"`
	Value string    `json:"value"`
	At    time.Time `json:"at"`
}

type endRecord struct {
	Type    string `json:"type"`
	Records int    `json:"records"`
}

// The other records are the store's own types, tagged.
type (
	orgRecord struct {
		Type string `json:"type"`
		*Org
	}
	domainRecord struct {
		Type string `json:"type"`
		*Domain
	}
	userRecord struct {
		Type string `json:"type"`
		*User
	}
	groupRecord struct {
		Type string `json:"type"`
		*Group
	}
	invitationRecord struct {
		Type string `json:"type"`
		*Invitation
	}
	auditRecord struct {
		Type string `json:"type"`
		*AuditEvent
	}
)

// Export writes organizations (see ExportOptions) in the portable format
// to w, from one consistent snapshot, streaming: memory does not grow
// with the number of users. It fails with ErrNotFound, before writing
// anything, if a requested organization does not exist. The store stays
// fully usable meanwhile. It returns the number of records by type.
func (s *Store) Export(w io.Writer, opts ExportOptions) (ExportStats, error) {
	const op = "export"
	for _, id := range opts.Orgs {
		if !orgIDPattern.MatchString(id) {
			return nil, invalid(op, "organization id %q must match %s", id, orgIDPattern)
		}
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	stats := ExportStats{}
	records := 0
	put := func(typ string, v any) error {
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("store: %s: write %s: %w", op, typ, err)
		}
		stats[typ]++
		records++
		return nil
	}
	err := s.view(func(txn Txn) error {
		all := len(opts.Orgs) == 0
		var orgIDs []string
		if all {
			for _, k := range keysWithPrefix(txn, scanPrefix(pOrg), nil, 0) {
				orgIDs = append(orgIDs, lastSegment(k))
			}
		} else {
			orgIDs = slices.Clone(opts.Orgs)
			slices.Sort(orgIDs)
			orgIDs = slices.Compact(orgIDs)
			for _, id := range orgIDs {
				if ok, err := exists(txn, key(pOrg, id)); err != nil {
					return err
				} else if !ok {
					return notFound(op, "organization", id)
				}
			}
		}
		h := ExportHeader{
			Format: ExportFormat, Version: ExportVersion, ExportedAt: now(),
			Orgs: orgIDs, All: all, WithSecrets: opts.WithSecrets,
		}
		if h.Orgs == nil {
			h.Orgs = []string{}
		}
		if err := enc.Encode(&h); err != nil {
			return fmt.Errorf("store: %s: write header: %w", op, err)
		}
		if all && opts.WithSecrets {
			err := eachValue(txn, scanPrefix(pSecret), func(k []byte, v json.RawMessage) error {
				var b []byte
				if err := json.Unmarshal(v, &b); err != nil {
					return fmt.Errorf("store: %s: decode %q: %w", op, k, err)
				}
				return put(recSecret, &secretRecord{Type: recSecret, Name: lastSegment(k), Value: b})
			})
			if err != nil {
				return err
			}
		}
		if all {
			if err := exportAudit(txn, "", put); err != nil {
				return err
			}
		}
		for _, id := range orgIDs {
			if err := exportOrg(txn, id, opts.WithSecrets, put); err != nil {
				return err
			}
		}
		return enc.Encode(&endRecord{Type: recEnd, Records: records})
	})
	if err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return stats, nil
}

// exportOrg writes one organization's section.
func exportOrg(txn Txn, id string, withSecrets bool, put func(string, any) error) error {
	o := new(Org)
	if err := getJSON(txn, key(pOrg, id), o); err != nil {
		return wrapNotFound(err, "export", "organization", id)
	}
	if !withSecrets {
		// The token's times go with it: the configurator then shows that
		// the organization has no token, which is the truth after import.
		o.SCIMTokenHash, o.SCIMTokenCreated, o.SCIMTokenLastUsed = nil, time.Time{}, time.Time{}
	}
	if err := put(recOrg, &orgRecord{recOrg, o}); err != nil {
		return err
	}
	decodeEach := func(p []byte, newRec func() (any, func() error)) error {
		return listJSON(txn, p, 0, -1, func(b []byte) error {
			v, emit := newRec()
			if err := json.Unmarshal(b, v); err != nil {
				return err
			}
			return emit()
		})
	}
	err := decodeEach(scanPrefix(pDom, id), func() (any, func() error) {
		d := new(Domain)
		return d, func() error { return put(recDomain, &domainRecord{recDomain, d}) }
	})
	if err != nil {
		return err
	}
	err = decodeEach(scanPrefix(pUser, id), func() (any, func() error) {
		u := new(User)
		return u, func() error {
			if !withSecrets {
				u.PasswordHash = ""
			}
			return put(recUser, &userRecord{recUser, u})
		}
	})
	if err != nil {
		return err
	}
	err = decodeEach(scanPrefix(pGrp, id), func() (any, func() error) {
		g := new(Group)
		return g, func() error { return put(recGroup, &groupRecord{recGroup, g}) }
	})
	if err != nil {
		return err
	}
	kinds := map[string]string{}
	for name, seg := range udelKinds {
		kinds[seg] = name
	}
	p := scanPrefix(pUDel, id)
	err = eachValue(txn, p, func(k []byte, v json.RawMessage) error {
		kind, val, ok := strings.Cut(string(k[len(p):]), "/")
		if !ok || kinds[kind] == "" {
			return fmt.Errorf("store: export: unexpected key %q", k)
		}
		r := &deprovisionedRecord{Type: recDeprovisioned, OrgID: id, Kind: kinds[kind], Value: unesc(val)}
		if err := json.Unmarshal(v, &r.At); err != nil {
			return fmt.Errorf("store: export: decode %q: %w", k, err)
		}
		return put(recDeprovisioned, r)
	})
	if err != nil {
		return err
	}
	if withSecrets {
		t := time.Now()
		err := eachValue(txn, scanPrefix(pLInvUser, id), func(k []byte, _ json.RawMessage) error {
			inv := new(Invitation)
			switch err := getJSON(txn, key(pLInv, lastSegment(k)), inv); {
			case errors.Is(err, ErrNotFound):
				return nil // used or expired meanwhile
			case err != nil:
				return err
			}
			if !t.Before(inv.ExpiresAt) || inv.OrgID != id {
				return nil
			}
			return put(recInvitation, &invitationRecord{recInvitation, inv})
		})
		if err != nil {
			return err
		}
	}
	return exportAudit(txn, id, put)
}

// exportAudit writes the audit trail of one organization ("": the
// gateway-wide one).
func exportAudit(txn Txn, orgID string, put func(string, any) error) error {
	return listJSON(txn, scanPrefix(pAudit, orgID), 0, -1, func(b []byte) error {
		e := new(AuditEvent)
		if err := json.Unmarshal(b, e); err != nil {
			return err
		}
		return put(recAudit, &auditRecord{recAudit, e})
	})
}

// eachValue calls fn with each key under p and its raw value, reading the
// keys a page at a time so that memory stays bounded.
func eachValue(txn Txn, p []byte, fn func(k []byte, v json.RawMessage) error) error {
	var from []byte
	for {
		keys := keysWithPrefix(txn, p, from, importBatch)
		for _, k := range keys {
			var v json.RawMessage
			switch err := getJSON(txn, k, &v); {
			case errors.Is(err, ErrNotFound):
				continue
			case err != nil:
				return err
			}
			if err := fn(k, v); err != nil {
				return err
			}
		}
		if len(keys) < importBatch {
			return nil
		}
		from = append(keys[len(keys)-1], 0)
	}
}
