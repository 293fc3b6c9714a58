package store

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Import reads a file Export wrote and stores what it holds (all of it, or
// the organizations opts.Orgs names); see ImportOptions for what it
// imports only when asked.
//
// It reads r twice. The first pass checks everything, the file against
// itself (syntax, every field a record needs, unique IDs and names,
// members that are users of the organization, a verified domain held by
// one organization, known secret names, the record count of the end
// line) and against the store (an organization that exists is refused
// unless opts.Replace; a domain the file has verified that another
// organization holds, even if it is to be imported pending; a different
// secret under the same name unless opts.Replace); on the first problem it returns an error wrapping
// ErrInvalid (ErrExists, ErrConflict for the store's refusals) that
// names the line, and has written nothing. The second pass writes,
// through the transactions that keep indexes, counters and stored bytes,
// in batches: memory does not grow with the number of users.
//
// The second pass trusts nothing the first pass saw: r may not read the
// same twice (a file rewritten meanwhile, a network mount). It checks
// every line again as the first pass did before writing it, writes a
// record only into the section's own organization, which the first pass
// approved, and only verified domains and secrets the first pass
// approved, and compares the whole file's SHA-256 at the end. Anything
// else aborts the import as a failed write does. Callers that can should
// still give Import a private copy (the store command does).
//
// Each organization is written inactive and gets its exported state only
// once all its records are in, so no gateway sharing the store routes
// sign-ins to a half-imported organization. If a write fails (a full
// disk, a lost database), the organizations this import created are
// deleted again and the error says so; organizations that --replace
// deleted are gone, and running the import again restores them.
func (s *Store) Import(r io.ReadSeeker, opts ImportOptions) (*ImportResult, error) {
	const op = "import"
	want := map[string]bool{}
	for _, id := range opts.Orgs {
		if !orgIDPattern.MatchString(id) {
			return nil, invalid(op, "organization id %q must match %s", id, orgIDPattern)
		}
		want[id] = true
	}
	// Import does not hold the store open throughout (enter): it calls
	// DeleteOrg and AddDomain, which do. Each of its own transactions does.
	v := newImportCheck(want, opts)
	first := sha256.New()
	if err := readExport(r, hashLines(first, v.check)); err != nil {
		return nil, err
	}
	v.digest = first.Sum(nil)
	for id := range want {
		if !slices.Contains(v.header.Orgs, id) {
			return nil, fmt.Errorf("store: %s: organization %q is not in the file: %w", op, id, ErrNotFound)
		}
	}
	if err := v.checkOptions(opts); err != nil {
		return nil, err
	}
	if err := s.checkImportTarget(v, opts); err != nil {
		return nil, err
	}
	res := v.result(opts)
	if opts.DryRun {
		res.Stats = v.writes
		return res, nil
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("store: %s: rewind: %w", op, err)
	}

	w := newImportWriter(s, v, opts)
	for _, id := range v.existing {
		if err := s.DeleteOrg(id); err != nil {
			return nil, fmt.Errorf("store: %s: replacing organization %q: %w", op, id, err)
		}
	}
	err := readExport(r, w.write)
	if err == nil {
		err = w.finishOrg()
	}
	if err != nil {
		var undone []string
		for _, id := range w.created {
			if derr := s.DeleteOrg(id); derr != nil {
				s.log.Error("import: removing a partly imported organization failed; delete it before importing again", zap.String("org", id), zap.Error(derr))
				return nil, fmt.Errorf("store: %s: %w (and removing the partly imported organization %q failed: %v)", op, err, id, derr)
			}
			undone = append(undone, id)
		}
		if len(undone) > 0 {
			return nil, fmt.Errorf("store: %s: %w (partly imported organizations %q were removed again)", op, err, undone)
		}
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	res.Stats = w.stats
	return res, nil
}

// hashLines passes each line to fn after adding it to h.
func hashLines(h hash.Hash, fn func(int, string, []byte) error) func(int, string, []byte) error {
	return func(line int, typ string, raw []byte) error {
		if raw != nil {
			h.Write(raw)
			h.Write([]byte{'\n'})
		}
		return fn(line, typ, raw)
	}
}

// checkOptions refuses options the file cannot satisfy: asking for the
// gateway-wide records of a file that has none, or of one organization,
// means the wrong file or the wrong command.
func (c *importCheck) checkOptions(opts ImportOptions) error {
	const op = "import"
	if opts.WithSecrets && (!c.header.All || !c.header.WithSecrets || len(c.want) > 0) {
		return invalid(op, "gateway secrets were asked for (--with-secrets), but the file is not an export of everything with secrets, or only some organizations are imported")
	}
	if opts.GatewayAudit && (!c.header.All || len(c.want) > 0) {
		return invalid(op, "the gateway-wide audit trail was asked for, but the file is not an export of everything, or only some organizations are imported")
	}
	return nil
}

// result is what the first pass tells of the import to come.
func (c *importCheck) result(opts ImportOptions) *ImportResult {
	res := &ImportResult{Replaced: slices.Clone(c.existing)}
	for _, id := range c.header.Orgs {
		if c.importing(id) && !slices.Contains(c.existing, id) {
			res.Created = append(res.Created, id)
		}
	}
	for name := range c.secrets {
		if c.importSecrets {
			res.Secrets = append(res.Secrets, name)
		} else if c.all {
			res.SkippedSecrets = append(res.SkippedSecrets, name)
		}
	}
	slices.Sort(res.Secrets)
	slices.Sort(res.SkippedSecrets)
	if c.all && !c.importAudit {
		res.SkippedGatewayAudit = c.gatewayAudit
	}
	if !opts.TrustDomains {
		for _, d := range c.verified {
			res.PendingDomains = append(res.PendingDomains, d)
		}
		slices.SortFunc(res.PendingDomains, func(a, b ImportedDomain) int {
			return cmp.Or(strings.Compare(a.Org, b.Org), strings.Compare(a.Name, b.Name))
		})
	}
	return res
}

func newImportCheck(want map[string]bool, opts ImportOptions) *importCheck {
	return &importCheck{
		want: want, counts: ExportStats{}, writes: ExportStats{},
		verified: map[string]ImportedDomain{}, secrets: map[string][]byte{},
		withSecrets: opts.WithSecrets, withAudit: opts.GatewayAudit,
	}
}

// CheckExport reads a whole export file and checks it as Import does
// before writing (the file against itself, no store), returning its
// header and the number of records by type.
func CheckExport(r io.Reader) (ExportHeader, ExportStats, error) {
	c := newImportCheck(nil, ImportOptions{})
	if err := readExport(r, c.check); err != nil {
		return ExportHeader{}, nil, err
	}
	return c.header, c.counts, nil
}

// readExport calls fn with each line of an export file after decoding its
// type; fn sees the header as line 1 with type "".
func readExport(r io.Reader, fn func(line int, typ string, raw []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxExportLine)
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Bytes()
		typ := ""
		if n > 1 {
			var t struct {
				Type string `json:"type"`
			}
			if err := json.Unmarshal(raw, &t); err != nil {
				return lineErr(n, "not a JSON object: %v", err)
			}
			if t.Type == "" {
				return lineErr(n, "no record type")
			}
			typ = t.Type
		}
		if err := fn(n, typ, raw); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return lineErr(n+1, "longer than %d bytes", maxExportLine)
		}
		return fmt.Errorf("store: import: reading line %d: %w", n+1, err)
	}
	if n == 0 {
		return fmt.Errorf("store: import: empty file: %w", ErrInvalid)
	}
	return fn(n+1, "", nil) // end of input
}

func lineErr(line int, format string, args ...any) error {
	return fmt.Errorf("store: import: line %d: %s: %w", line, fmt.Sprintf(format, args...), ErrInvalid)
}

// decodeStrict decodes one JSON object into v, refusing fields v does not
// have and anything after the object.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the object")
	}
	return nil
}

// importCheck is the first pass: it checks every line and remembers what
// the second pass and the checks against the store need (no records).
type importCheck struct {
	want        map[string]bool // organizations to import; empty: all
	withSecrets bool            // ImportOptions.WithSecrets
	withAudit   bool            // ImportOptions.GatewayAudit

	header       ExportHeader
	headerRaw    []byte
	counts       ExportStats // records of the file
	writes       ExportStats // records of the file to be written
	records      int
	gatewayAudit int // gateway-wide audit events of the file
	ended        bool
	cur          *orgCheck // the section being read
	seen         map[string]bool
	verified     map[string]ImportedDomain // verified domain → its organization, of those imported
	secrets      map[string][]byte         // the file's secrets; values only if imported
	existing     []string                  // organizations of the file the store has (set by checkImportTarget)
	digest       []byte                    // SHA-256 of the file (set by Import)

	all           bool // the file has gateway-wide records and no organization was picked
	importSecrets bool // its secrets are written
	importAudit   bool // its gateway-wide audit events are written
}

// orgCheck is what the first pass keeps of one organization's section:
// its keys, so that groups and uniqueness can be checked. It is dropped
// at the end of the section.
//
// Keys are kept as 128-bit hashes, not strings: a section of 100k users
// then needs a few MiB. Two keys colliding would make a good file look
// like one with a duplicate, never the other way round.
type orgCheck struct {
	id      string
	users   map[checkKey]bool // ID → local account
	unames  map[checkKey]bool
	uexts   map[checkKey]bool
	groups  map[checkKey]bool
	gexts   map[checkKey]bool
	domains map[checkKey]bool
	udel    map[checkKey]bool
	stage   int    // order of record kinds within the section
	backup  string // the organization's backup login, a local account of the section
}

// end checks what only the whole section tells.
func (oc *orgCheck) end(line int) error {
	if oc == nil || oc.backup == "" {
		return nil
	}
	if local, ok := oc.users[ck(oc.backup)]; !ok || !local {
		return lineErr(line, "organization %q: its backup login %q is not a local account of its section", oc.id, oc.backup)
	}
	return nil
}

type checkKey [16]byte

func ck(s string) checkKey {
	h := sha256.Sum256([]byte(s))
	return checkKey(h[:16])
}

func (c *importCheck) importing(org string) bool {
	return len(c.want) == 0 || c.want[org]
}

// check checks one line, and counts it among the records to be written if
// it is one.
func (c *importCheck) check(line int, typ string, raw []byte) error {
	if err := c.checkLine(line, typ, raw); err != nil {
		return err
	}
	if raw == nil || line == 1 || typ == recEnd {
		return nil
	}
	var written bool
	switch {
	case typ == recSecret:
		written = c.importSecrets
	case typ == recAudit && c.cur == nil:
		c.gatewayAudit++
		written = c.importAudit
	default: // an org record has just become c.cur
		written = c.cur != nil && c.importing(c.cur.id)
	}
	if written {
		c.writes[typ]++
	}
	return nil
}

func (c *importCheck) checkLine(line int, typ string, raw []byte) error {
	if raw == nil {
		if !c.ended {
			return lineErr(line, "the file ends without its end line (truncated?)")
		}
		return nil
	}
	if c.ended {
		return lineErr(line, "data after the end line")
	}
	if line == 1 {
		if err := decodeStrict(raw, &c.header); err != nil {
			return lineErr(line, "not an export header: %v", err)
		}
		c.headerRaw = slices.Clone(raw)
		h := &c.header
		if h.Format != ExportFormat {
			return lineErr(line, "format %q is not %q", h.Format, ExportFormat)
		}
		if h.Version != ExportVersion {
			return lineErr(line, "version %d is not supported (this gateway reads version %d)", h.Version, ExportVersion)
		}
		c.seen = map[string]bool{}
		for _, id := range h.Orgs {
			if !orgIDPattern.MatchString(id) {
				return lineErr(line, "organization id %q must match %s", id, orgIDPattern)
			}
			if _, dup := c.seen[id]; dup {
				return lineErr(line, "organization %q listed twice", id)
			}
			c.seen[id] = false
		}
		c.all = h.All && len(c.want) == 0
		c.importSecrets = c.all && h.WithSecrets && c.withSecrets
		c.importAudit = c.all && c.withAudit
		return nil
	}
	if typ == recEnd {
		if err := c.cur.end(line); err != nil {
			return err
		}
		c.cur = nil
		var e endRecord
		if err := decodeStrict(raw, &e); err != nil {
			return lineErr(line, "end: %v", err)
		}
		if e.Records != c.records {
			return lineErr(line, "the end line counts %d records, the file has %d", e.Records, c.records)
		}
		for id, done := range c.seen {
			if !done {
				return lineErr(line, "organization %q is listed in the header but has no section", id)
			}
		}
		c.ended = true
		return nil
	}
	c.records++
	c.counts[typ]++
	switch typ {
	case recSecret:
		var r secretRecord
		if err := decodeStrict(raw, &r); err != nil {
			return lineErr(line, "secret: %v", err)
		}
		if !c.header.All || !c.header.WithSecrets || c.cur != nil {
			return lineErr(line, "a secret belongs only before the organizations of an export of everything with secrets")
		}
		if r.Name == "" || len(r.Value) == 0 {
			return lineErr(line, "secret without a name or value")
		}
		if !gatewaySecretName(r.Name) {
			return lineErr(line, "secret %q is not one of the gateway's (session-key, saml-sp-keypair, upstream-jwt-es256/<period>)", r.Name)
		}
		if _, dup := c.secrets[r.Name]; dup {
			return lineErr(line, "secret %q given twice", r.Name)
		}
		if c.importSecrets {
			c.secrets[r.Name] = r.Value
		} else {
			c.secrets[r.Name] = nil // checked for duplicates, not imported
		}
		return nil
	case recOrg:
		return c.checkOrg(line, raw)
	}
	if typ == recAudit && c.cur == nil {
		var r auditRecord
		if err := decodeStrict(raw, &r); err != nil || r.AuditEvent == nil {
			return lineErr(line, "audit: %v", err)
		}
		if !c.header.All || r.OrgID != "" {
			return lineErr(line, "audit event of organization %q outside its section", r.OrgID)
		}
		return checkAuditEvent(line, r.AuditEvent)
	}
	if c.cur == nil {
		return lineErr(line, "%s record before any organization", typ)
	}
	return c.cur.check(c, line, typ, raw)
}

func (c *importCheck) checkOrg(line int, raw []byte) error {
	if err := c.cur.end(line); err != nil {
		return err
	}
	var r orgRecord
	if err := decodeStrict(raw, &r); err != nil || r.Org == nil {
		return lineErr(line, "org: %v", err)
	}
	o := r.Org
	if !orgIDPattern.MatchString(o.ID) {
		return lineErr(line, "organization id %q must match %s", o.ID, orgIDPattern)
	}
	done, listed := c.seen[o.ID]
	if !listed {
		return lineErr(line, "organization %q is not listed in the header", o.ID)
	}
	if done {
		return lineErr(line, "organization %q given twice", o.ID)
	}
	c.seen[o.ID] = true
	if !validOrgState(o.State) {
		return lineErr(line, "organization %q: state %q", o.ID, o.State)
	}
	if o.Created.IsZero() {
		return lineErr(line, "organization %q: no creation time", o.ID)
	}
	if len(o.SCIMTokenHash) != 0 && len(o.SCIMTokenHash) != 32 {
		return lineErr(line, "organization %q: the SCIM token hash is not a SHA-256", o.ID)
	}
	c.cur = &orgCheck{
		id: o.ID, backup: o.BackupLogin, users: map[checkKey]bool{}, unames: map[checkKey]bool{}, uexts: map[checkKey]bool{},
		groups: map[checkKey]bool{}, gexts: map[checkKey]bool{}, domains: map[checkKey]bool{}, udel: map[checkKey]bool{},
	}
	return nil
}

// Stages of a section: records of a kind may not come before those of an
// earlier stage (groups need their members, invitations their users).
var sectionStage = map[string]int{
	recDomain: 1, recUser: 2, recGroup: 3, recDeprovisioned: 4, recInvitation: 5, recAudit: 6,
}

func (oc *orgCheck) check(c *importCheck, line int, typ string, raw []byte) error {
	stage, ok := sectionStage[typ]
	if !ok {
		return lineErr(line, "unknown record type %q", typ)
	}
	if stage < oc.stage {
		return lineErr(line, "%s record after the records that follow it in an export", typ)
	}
	oc.stage = stage
	bad := func(format string, args ...any) error {
		return lineErr(line, "%s of organization %q: %s", typ, oc.id, fmt.Sprintf(format, args...))
	}
	sameOrg := func(org string) error {
		if org != oc.id {
			return bad("organization %q in the section of %q", org, oc.id)
		}
		return nil
	}
	switch typ {
	case recDomain:
		var r domainRecord
		if err := decodeStrict(raw, &r); err != nil || r.Domain == nil {
			return bad("%v", err)
		}
		d := r.Domain
		if err := sameOrg(d.OrgID); err != nil {
			return err
		}
		if err := checkDomainName("import", d.Name); err != nil {
			return bad("%v", err)
		}
		if !validDomainStatus(d.Status) {
			return bad("status %q", d.Status)
		}
		if oc.domains[ck(d.Name)] {
			return bad("domain %q given twice", d.Name)
		}
		oc.domains[ck(d.Name)] = true
		if d.Status == DomainVerified && c.importing(oc.id) {
			if other, ok := c.verified[d.Name]; ok {
				return bad("domain %q is also verified by organization %q", d.Name, other.Org)
			}
			c.verified[d.Name] = ImportedDomain{Org: oc.id, Name: d.Name, VerifiedBy: d.VerifiedBy}
		}
	case recUser:
		var r userRecord
		if err := decodeStrict(raw, &r); err != nil || r.User == nil {
			return bad("%v", err)
		}
		u := r.User
		if err := sameOrg(u.OrgID); err != nil {
			return err
		}
		if u.ID == "" {
			return bad("user without an id")
		}
		if err := checkUser("import", u); err != nil {
			return bad("user %q: %v", u.ID, err)
		}
		switch u.Source {
		case SourceLocal:
			if err := checkLocalUser("import", u); err != nil {
				return bad("user %q: %v", u.ID, err)
			}
		case SourceSCIM, SourceSAML, "":
		default:
			return bad("user %q: source %q", u.ID, u.Source)
		}
		if _, dup := oc.users[ck(u.ID)]; dup {
			return bad("user id %q given twice", u.ID)
		}
		oc.users[ck(u.ID)] = u.Source == SourceLocal
		if n := ck(userKey(u.UserName)); oc.unames[n] {
			return bad("user %q: userName %q is used by another user of the organization", u.ID, u.UserName)
		} else {
			oc.unames[n] = true
		}
		if u.ExternalID != "" {
			if oc.uexts[ck(u.ExternalID)] {
				return bad("user %q: externalId %q is used by another user of the organization", u.ID, u.ExternalID)
			}
			oc.uexts[ck(u.ExternalID)] = true
		}
	case recGroup:
		var r groupRecord
		if err := decodeStrict(raw, &r); err != nil || r.Group == nil {
			return bad("%v", err)
		}
		g := r.Group
		if err := sameOrg(g.OrgID); err != nil {
			return err
		}
		if g.ID == "" || g.DisplayName == "" {
			return bad("group without an id or displayName")
		}
		if oc.groups[ck(g.ID)] {
			return bad("group id %q given twice", g.ID)
		}
		oc.groups[ck(g.ID)] = true
		if g.ExternalID != "" {
			if oc.gexts[ck(g.ExternalID)] {
				return bad("group %q: externalId %q is used by another group of the organization", g.ID, g.ExternalID)
			}
			oc.gexts[ck(g.ExternalID)] = true
		}
		members := make(map[checkKey]bool, len(g.Members))
		for _, m := range g.Members {
			if _, ok := oc.users[ck(m)]; !ok {
				return bad("group %q: member %q is not a user of the organization", g.ID, m)
			}
			if members[ck(m)] {
				return bad("group %q: member %q given twice", g.ID, m)
			}
			members[ck(m)] = true
		}
	case recDeprovisioned:
		var r deprovisionedRecord
		if err := decodeStrict(raw, &r); err != nil {
			return bad("%v", err)
		}
		if err := sameOrg(r.OrgID); err != nil {
			return err
		}
		kind, ok := udelKinds[r.Kind]
		if !ok {
			return bad("kind %q", r.Kind)
		}
		if r.Value == "" || (kind != udelExternalID && userKey(r.Value) != r.Value) {
			return bad("value %q is not in normalized form", r.Value)
		}
		if k := ck(kind + "/" + r.Value); oc.udel[k] {
			return bad("%s %q given twice", r.Kind, r.Value)
		} else {
			oc.udel[k] = true
		}
	case recInvitation:
		var r invitationRecord
		if err := decodeStrict(raw, &r); err != nil || r.Invitation == nil {
			return bad("%v", err)
		}
		inv := r.Invitation
		if !c.header.WithSecrets {
			return bad("a set-password link in an export without secrets")
		}
		if err := sameOrg(inv.OrgID); err != nil {
			return err
		}
		if b, err := hex.DecodeString(inv.TokenHash); err != nil || len(b) != 32 {
			return bad("token hash must be a hex SHA-256")
		}
		if local, ok := oc.users[ck(inv.UserID)]; !ok || !local {
			return bad("user %q is not a local account of the organization", inv.UserID)
		}
		switch inv.Purpose {
		case InviteOwner, InviteUser, InviteReset:
		default:
			return bad("purpose %q", inv.Purpose)
		}
	case recAudit:
		var r auditRecord
		if err := decodeStrict(raw, &r); err != nil || r.AuditEvent == nil {
			return bad("%v", err)
		}
		if err := sameOrg(r.OrgID); err != nil {
			return err
		}
		return checkAuditEvent(line, r.AuditEvent)
	}
	return nil
}

func checkAuditEvent(line int, e *AuditEvent) error {
	if e.ID == "" || e.Action == "" || e.Time.IsZero() {
		return lineErr(line, "audit event without an id, action or time")
	}
	return nil
}

// checkImportTarget checks the store against the file: the organizations
// to import, their verified domains and the secrets. It records the
// organizations --replace will delete.
func (s *Store) checkImportTarget(c *importCheck, opts ImportOptions) error {
	replace := opts.Replace
	const op = "import"
	orgs := map[string]bool{}
	for _, id := range c.header.Orgs {
		if c.importing(id) {
			orgs[id] = true
		}
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.view(func(txn Txn) error {
		for _, id := range c.header.Orgs {
			if !orgs[id] {
				continue
			}
			if ok, err := exists(txn, key(pOrgDel, id)); err != nil {
				return err
			} else if ok {
				return fmt.Errorf("store: %s: organization %q is still being deleted: %w", op, id, ErrConflict)
			}
			if ok, err := exists(txn, key(pOrg, id)); err != nil {
				return err
			} else if ok {
				if !replace {
					return fmt.Errorf("store: %s: organization %q exists (import --replace deletes it first): %w", op, id, ErrExists)
				}
				c.existing = append(c.existing, id)
			}
		}
		// Checked even for domains imported pending: the store refuses
		// any claim, pending too, of a domain another organization holds.
		for name, d := range c.verified {
			holder, err := verifiedBy(txn, name)
			if err != nil {
				return err
			}
			// An organization being replaced releases its domains first.
			if holder != "" && holder != d.Org && !(replace && orgs[holder]) {
				return fmt.Errorf("store: %s: domain %q of organization %q is verified by organization %q in the store: %w", op, name, d.Org, holder, ErrConflict)
			}
		}
		if !c.importSecrets {
			return nil
		}
		for name, val := range c.secrets {
			var have []byte
			switch err := getJSON(txn, key(pSecret, name), &have); {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return err
			case !bytes.Equal(have, val) && !replace:
				return fmt.Errorf("store: %s: the store has a different secret %q (import --replace overwrites it): %w", op, name, ErrExists)
			}
		}
		return nil
	})
}

// importWriter is the second pass.
type importWriter struct {
	s     *Store
	check *importCheck // the first pass, which approved the import
	opts  ImportOptions
	stats ExportStats

	// recheck checks each line again, as the first pass did, before it
	// is written; hash sums the lines for the comparison at the end.
	recheck *importCheck
	hash    hash.Hash

	cur     *Org   // the section being written, nil when skipped
	skip    bool   // the section is not imported
	state   string // the organization's exported state, set by finishOrg
	scim    []byte // its SCIM token hash, likewise
	created []string

	users []*User
	udel  []*deprovisionedRecord
	audit []*AuditEvent
}

func newImportWriter(s *Store, check *importCheck, opts ImportOptions) *importWriter {
	return &importWriter{
		s: s, check: check, opts: opts, stats: ExportStats{},
		recheck: newImportCheck(check.want, opts), hash: sha256.New(),
	}
}

// errChanged marks a line of the second pass that is not what the first
// pass checked.
func errChanged(line int, format string, args ...any) error {
	return lineErr(line, "the file changed after it was checked: %s", fmt.Sprintf(format, args...))
}

func (w *importWriter) write(line int, typ string, raw []byte) error {
	if raw != nil {
		w.hash.Write(raw)
		w.hash.Write([]byte{'\n'})
	}
	if err := w.recheck.check(line, typ, raw); err != nil {
		return fmt.Errorf("the file changed after it was checked: %w", err)
	}
	var err error
	switch {
	case raw == nil:
		if !bytes.Equal(w.hash.Sum(nil), w.check.digest) {
			return errChanged(line, "its SHA-256 differs")
		}
		return nil
	case line == 1:
		if !bytes.Equal(raw, w.check.headerRaw) {
			return errChanged(line, "another header")
		}
		return nil
	case typ == recEnd:
		return nil
	case typ == recOrg:
		if err = w.finishOrg(); err != nil {
			return err
		}
		var r orgRecord
		if err = decodeStrict(raw, &r); err != nil {
			return lineErr(line, "%v", err)
		}
		if !w.check.seen[r.ID] {
			return errChanged(line, "organization %q was not in it", r.ID)
		}
		return w.startOrg(r.Org)
	case typ == recSecret:
		if !w.check.importSecrets {
			return nil
		}
		var r secretRecord
		if err = decodeStrict(raw, &r); err != nil {
			return lineErr(line, "%v", err)
		}
		// The first pass compared this value with the store's.
		if approved, ok := w.check.secrets[r.Name]; !ok || !bytes.Equal(approved, r.Value) {
			return errChanged(line, "secret %q is not the one checked", r.Name)
		}
		err = w.s.updateOpen("import secret", func(txn Txn) error {
			_, err := setJSON(txn, key(pSecret, r.Name), r.Value, 0)
			return err
		})
		w.stats[recSecret]++
	case typ == recAudit && w.cur == nil && !w.skip:
		if !w.check.importAudit {
			return nil
		}
		var r auditRecord
		if err = decodeStrict(raw, &r); err != nil {
			return lineErr(line, "%v", err)
		}
		if r.OrgID != "" {
			return errChanged(line, "audit event of organization %q outside its section", r.OrgID)
		}
		err = w.addAudit(r.AuditEvent)
	case w.skip:
		return nil
	case typ == recDomain:
		var r domainRecord
		if err = decodeStrict(raw, &r); err != nil {
			return lineErr(line, "%v", err)
		}
		if err = w.inSection(line, r.OrgID); err != nil {
			return err
		}
		d := r.Domain
		if d.Status == DomainVerified {
			if !w.opts.TrustDomains {
				// Nobody here verified it: the operator verifies it again
				// (its token is kept, so its TXT record still matches) or
				// vouches for it.
				d.Status, d.VerifiedAt, d.VerifiedBy = DomainPending, time.Time{}, ""
				d.LastCheck, d.LastResult = now(), "imported unverified: verify it again"
			} else if approved := w.check.verified[d.Name]; approved.Org != d.OrgID {
				return errChanged(line, "domain %q was not verified for organization %q", d.Name, d.OrgID)
			}
		}
		// AddDomain keeps the record's times and claims a verified domain.
		err = w.s.AddDomain(d)
		w.stats[recDomain]++
	case typ == recUser:
		var r userRecord
		if err = decodeStrict(raw, &r); err != nil {
			return lineErr(line, "%v", err)
		}
		if err = w.inSection(line, r.OrgID); err != nil {
			return err
		}
		if w.users = append(w.users, r.User); len(w.users) >= importBatch {
			err = w.flushUsers()
		}
	case typ == recGroup:
		if err = w.flushUsers(); err != nil {
			return err
		}
		var r groupRecord
		if err = decodeStrict(raw, &r); err != nil {
			return lineErr(line, "%v", err)
		}
		if err = w.inSection(line, r.OrgID); err != nil {
			return err
		}
		err = w.s.importGroup(r.Group)
		w.stats[recGroup]++
	case typ == recDeprovisioned:
		r := new(deprovisionedRecord)
		if err = decodeStrict(raw, r); err != nil {
			return lineErr(line, "%v", err)
		}
		if err = w.inSection(line, r.OrgID); err != nil {
			return err
		}
		if w.udel = append(w.udel, r); len(w.udel) >= importBatch {
			err = w.flushUDel()
		}
	case typ == recInvitation:
		var r invitationRecord
		if err = decodeStrict(raw, &r); err != nil {
			return lineErr(line, "%v", err)
		}
		if err = w.inSection(line, r.OrgID); err != nil {
			return err
		}
		if !time.Now().Before(r.ExpiresAt) {
			w.stats["invitation_expired"]++
			return nil // nobody can use it any more
		}
		err = w.s.updateOpen("import invitation", func(txn Txn) error { return putInvitation(txn, r.Invitation) })
		w.stats[recInvitation]++
	case typ == recAudit:
		var r auditRecord
		if err = decodeStrict(raw, &r); err != nil {
			return lineErr(line, "%v", err)
		}
		if err = w.inSection(line, r.OrgID); err != nil {
			return err
		}
		err = w.addAudit(r.AuditEvent)
	default:
		return errChanged(line, "unknown record type %q", typ)
	}
	if err != nil {
		return fmt.Errorf("line %d: %w", line, err)
	}
	return nil
}

// inSection refuses a record of another organization than the section
// being written. The re-check already refuses it; this keeps the rule
// next to the writes it protects.
func (w *importWriter) inSection(line int, org string) error {
	if w.cur == nil || org != w.cur.ID {
		return errChanged(line, "a record of organization %q in another section", org)
	}
	return nil
}

// startOrg writes the organization inactive and without its SCIM token:
// both are set once its records are in (finishOrg), so that neither
// sign-ins nor the IdP's provisioning reach a half-imported organization
// on a gateway sharing the store.
func (w *importWriter) startOrg(o *Org) error {
	if err := w.flushAudit(); err != nil { // gateway-wide events before it
		return err
	}
	w.skip = !w.check.importing(o.ID)
	if w.skip {
		return nil
	}
	w.state, w.scim = o.State, o.SCIMTokenHash
	o.State, o.SCIMTokenHash = OrgInactive, nil
	err := w.s.updateOpen("import org", func(txn Txn) error { return putNewOrg(txn, "import org", o) })
	if err != nil {
		return err
	}
	w.created = append(w.created, o.ID)
	w.cur = o
	w.stats[recOrg]++
	return nil
}

// finishOrg writes what is batched and sets the organization's state and
// SCIM token.
func (w *importWriter) finishOrg() error {
	if err := w.flushUsers(); err != nil {
		return err
	}
	if err := w.flushUDel(); err != nil {
		return err
	}
	if err := w.flushAudit(); err != nil {
		return err
	}
	if w.cur == nil || (w.state == OrgInactive && len(w.scim) == 0) {
		w.cur = nil
		return nil
	}
	id, state, scim := w.cur.ID, w.state, w.scim
	w.cur = nil
	return w.s.updateOpen("import org", func(txn Txn) error {
		o := new(Org)
		if err := getJSON(txn, key(pOrg, id), o); err != nil {
			return wrapNotFound(err, "import", "organization", id)
		}
		o.State, o.SCIMTokenHash = state, scim
		_, err := setJSON(txn, key(pOrg, id), o, 0)
		return err
	})
}

func (w *importWriter) flushUsers() error {
	if len(w.users) == 0 {
		return nil
	}
	batch := w.users
	w.users = w.users[:0]
	return w.writeUsers(batch)
}

// writeUsers writes batch in one transaction or, when that is more than
// the backend takes in one (Badger's limit is a share of its memtable
// size, and users may carry up to max_resource_size of attributes each),
// in halves.
func (w *importWriter) writeUsers(batch []*User) error {
	org := batch[0].OrgID
	err := w.s.updateOpen("import users", func(t Txn) error {
		txn := newCachingTxn(t)
		if err := requireOrg(txn, "import users", org); err != nil {
			return err
		}
		use := newUsage(org, nil)
		for _, u := range batch {
			c := *u
			if err := putNewUser(txn, use, "import users", &c); err != nil {
				return err
			}
			if c.Source == SourceLocal {
				if _, err := setJSON(txn, key(pLMail, localEmail(&c), org), c.ID, 0); err != nil {
					return err
				}
			}
		}
		return w.s.charge(txn, use, batch[0].ID)
	})
	if errors.Is(err, ErrTxnTooBig) && len(batch) > 1 {
		if err := w.writeUsers(batch[:len(batch)/2]); err != nil {
			return err
		}
		return w.writeUsers(batch[len(batch)/2:])
	}
	if err != nil {
		return err
	}
	w.stats[recUser] += len(batch)
	return nil
}

func (w *importWriter) flushUDel() error {
	if len(w.udel) == 0 {
		return nil
	}
	batch := w.udel
	w.udel = w.udel[:0]
	org := batch[0].OrgID
	err := w.s.updateOpen("import deprovisioned", func(t Txn) error {
		txn := newCachingTxn(t)
		if err := requireOrg(txn, "import deprovisioned", org); err != nil {
			return err
		}
		use := newUsage(org, nil)
		for _, r := range batch {
			if _, err := use.set(txn, key(pUDel, org, udelKinds[r.Kind], r.Value), r.At); err != nil {
				return err
			}
		}
		return w.s.charge(txn, use, batch[0].Value)
	})
	if err != nil {
		return err
	}
	w.stats[recDeprovisioned] += len(batch)
	return nil
}

func (w *importWriter) addAudit(e *AuditEvent) error {
	w.audit = append(w.audit, e)
	if len(w.audit) >= importBatch {
		return w.flushAudit()
	}
	return nil
}

func (w *importWriter) flushAudit() error {
	if len(w.audit) == 0 {
		return nil
	}
	batch := w.audit
	w.audit = nil // writeAudit may keep the events
	if err := w.s.enter(); err != nil {
		return err
	}
	defer w.s.leave()
	if err := w.s.writeAudit("import audit", batch); err != nil {
		return err
	}
	w.stats[recAudit] += len(batch)
	return nil
}

// importGroup creates a group as it was exported (times included), its
// members added importMemberChunk per transaction so that a group of any
// size fits.
func (s *Store) importGroup(g *Group) error {
	const op = "import group"
	members := g.Members
	first := *g
	first.Members = members[:min(len(members), importMemberChunk)]
	err := s.updateOpen(op, func(t Txn) error {
		txn := newCachingTxn(t)
		if err := requireOrg(txn, op, g.OrgID); err != nil {
			return err
		}
		k := key(pGrp, g.OrgID, g.ID)
		if ok, err := exists(txn, k); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("store: %s: group %q: %w", op, g.ID, ErrExists)
		}
		use := newUsage(g.OrgID, nil)
		if err := writeGroupIndexes(txn, use, op, nil, &first); err != nil {
			return err
		}
		if _, err := use.set(txn, k, &first); err != nil {
			return err
		}
		if err := addCounter(txn, key(pCount, "groups", g.OrgID), 1); err != nil {
			return err
		}
		return s.charge(txn, use, g.ID)
	})
	if err != nil {
		return err
	}
	for done := len(first.Members); done < len(members); {
		next := min(len(members), done+importMemberChunk)
		err := s.updateOpen(op, func(t Txn) error {
			txn := newCachingTxn(t)
			k := key(pGrp, g.OrgID, g.ID)
			old := new(Group)
			if err := getJSON(txn, k, old); err != nil {
				return wrapNotFound(err, op, "group", g.ID)
			}
			c := *old
			c.Members = append(slices.Clone(old.Members), members[done:next]...)
			use := newUsage(g.OrgID, nil)
			if err := writeGroupIndexes(txn, use, op, old, &c); err != nil {
				return err
			}
			if _, err := use.set(txn, k, &c); err != nil {
				return err
			}
			return s.charge(txn, use, g.ID)
		})
		if err != nil {
			return err
		}
		done = next
	}
	return nil
}

// updateOpen is update for a caller that has not entered the store.
func (s *Store) updateOpen(op string, fn func(txn Txn) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.update(op, fn)
}

// cachingTxn remembers, for one transaction, what it read and wrote, so
// that the same key is fetched once: an import batch reads the user
// counter, the stored-byte marker and each new key more than once, and on
// PostgreSQL every read is a round trip. Reads stay in the transaction,
// so its isolation is unchanged. Every write passes through to the
// transaction, so its iterators (which pass through too) see them.
type cachingTxn struct {
	Txn
	seen map[string]cachedValue
}

type cachedValue struct {
	v       []byte
	present bool
}

func newCachingTxn(t Txn) *cachingTxn {
	return &cachingTxn{Txn: t, seen: map[string]cachedValue{}}
}

func (c *cachingTxn) Get(k []byte) ([]byte, error) {
	if e, ok := c.seen[string(k)]; ok {
		if !e.present {
			return nil, ErrNoKey
		}
		return e.v, nil
	}
	v, err := c.Txn.Get(k)
	switch {
	case err == nil:
		c.seen[string(k)] = cachedValue{v: v, present: true}
	case errors.Is(err, ErrNoKey):
		c.seen[string(k)] = cachedValue{}
	}
	return v, err
}

func (c *cachingTxn) Set(k, v []byte, expiresAt uint64) error {
	if err := c.Txn.Set(k, v, expiresAt); err != nil {
		return err
	}
	c.seen[string(k)] = cachedValue{v: v, present: true}
	return nil
}

func (c *cachingTxn) Delete(k []byte) error {
	if err := c.Txn.Delete(k); err != nil {
		return err
	}
	c.seen[string(k)] = cachedValue{}
	return nil
}
