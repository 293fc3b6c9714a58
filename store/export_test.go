package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// exportFixture fills s with every kind of record an export carries, and
// some it must leave out (sessions, AuthnRequests, replay keys).
type exportFixture struct {
	orgs        []string
	ownerHash   string // a password hash
	inviteToken string // hash of a pending set-password link
	scimHash    []byte
}

func fillExportFixture(t testing.TB, s *Store) exportFixture {
	t.Helper()
	f := exportFixture{orgs: []string{"acme", "globex"}}
	secret := []byte("session-key-bytes-0123456789abcdef")
	got, err := s.GetOrCreateSecret("session-key", func() ([]byte, error) { return secret, nil })
	must(t, err)
	if !bytes.Equal(got, secret) {
		t.Fatal("secret not stored")
	}
	_, err = s.GetOrCreateSecret("upstream-jwt-es256/42", func() ([]byte, error) { return []byte("jwt key"), nil })
	must(t, err)
	must(t, s.AppendAudit(&AuditEvent{Actor: "operator", Action: "gateway.start", Outcome: "success"}))

	for i, id := range f.orgs {
		o := &Org{ID: id, Name: "Org " + id, OwnerEmail: "owner@" + id + ".example"}
		owner := &User{UserName: "owner@" + id + ".example", Emails: []Email{{Value: "owner@" + id + ".example"}},
			Source: SourceLocal, Role: RoleAdmin, Active: true}
		tok := sha256.Sum256([]byte("owner-link-" + id))
		must(t, s.CreateOrgWithOwner(o, owner, &Invitation{TokenHash: hex.EncodeToString(tok[:]), Purpose: InviteOwner, ExpiresAt: time.Now().Add(time.Hour)}))
		f.ownerHash = "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA-" + id
		_, _, err := s.RedeemInvitation(hex.EncodeToString(tok[:]), f.ownerHash)
		must(t, err)
		// A second local account with a pending link.
		inv := sha256.Sum256([]byte("invite-" + id))
		f.inviteToken = hex.EncodeToString(inv[:])
		must(t, s.CreateLocalUser(&User{OrgID: id, UserName: "Bob@" + id + ".example", Emails: []Email{{Value: "Bob@" + id + ".example"}},
			Source: SourceLocal, Role: RoleUser, Active: true}, &Invitation{TokenHash: f.inviteToken, Purpose: InviteUser, ExpiresAt: time.Now().Add(time.Hour)}))

		must(t, s.AddDomain(&Domain{OrgID: id, Name: id + ".example", Token: "tok-" + id, Status: DomainVerified, VerifiedBy: "dns"}))
		must(t, s.AddDomain(&Domain{OrgID: id, Name: "pending-" + id + ".example", Token: "tok2"}))

		var ids []string
		for j := range 5 {
			u := &User{OrgID: id, UserName: fmt.Sprintf("User%d@%s.example", j, id), ExternalID: fmt.Sprintf("ext-%d", j),
				Emails:      []Email{{Value: fmt.Sprintf("user%d@%s.example", j, id), Primary: true}, {Value: "shared@" + id + ".example", Type: "work"}},
				DisplayName: fmt.Sprintf("User %d", j), Active: j != 3, Source: SourceSCIM,
				SCIM: map[string]any{"title": "Engineer", "n": float64(j)}}
			must(t, s.ProvisionUser(u))
			ids = append(ids, u.ID)
		}
		must(t, s.CreateUser(&User{OrgID: id, UserName: "jit@" + id + ".example", Source: SourceSAML, Active: true}))
		must(t, s.CreateGroup(&Group{OrgID: id, DisplayName: "Admins", ExternalID: "g-admins", Members: ids[:2]}))
		must(t, s.CreateGroup(&Group{OrgID: id, DisplayName: "admins", Members: ids[1:4]})) // names may be shared
		must(t, s.CreateGroup(&Group{OrgID: id, DisplayName: "Empty"}))
		must(t, s.DeprovisionUser(id, ids[4]))

		f.scimHash = bytes.Repeat([]byte{byte(i + 1)}, 32)
		_, err = s.UpdateOrg(id, func(o *Org) error {
			o.SCIMTokenHash, o.SCIMTokenCreated = f.scimHash, now()
			o.Steps = map[string]bool{"register": true}
			o.AdminGroup = GroupMapping{Name: "Admins", ID: "g-admins"}
			if i == 0 {
				o.State = OrgActive
			}
			return nil
		})
		must(t, err)
		must(t, s.AppendAudit(&AuditEvent{OrgID: id, Actor: "operator", Action: "org.create", Outcome: "success", Details: map[string]string{"k": "v"}}))

		must(t, s.CreateSession(&Session{ID: "sess-" + id, OrgID: id, UserID: ids[0], AuthMethod: "saml", ExpiresAt: time.Now().Add(time.Hour)}))
		must(t, s.PutAuthnRequest(&AuthnRequest{ID: "req-" + id, OrgID: id, Binding: "b", ExpiresAt: time.Now().Add(time.Hour)}))
		must(t, s.ConsumeOnce("replay-"+id, time.Now().Add(time.Hour)))
	}
	return f
}

func exportBytes(t *testing.T, s *Store, opts ExportOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.Export(&buf, opts); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return buf.Bytes()
}

func importBytes(s *Store, data []byte, opts ImportOptions) (ExportStats, error) {
	res, err := s.Import(bytes.NewReader(data), opts)
	if err != nil {
		return nil, err
	}
	return res.Stats, nil
}

// moveAll are the options of a move of one's own deployment: everything
// the file holds, as it was.
var moveAll = ImportOptions{WithSecrets: true, GatewayAudit: true, TrustDomains: true}

// sameOrgData compares, through the store's API, everything an export
// carries of one organization, indexes included.
func sameOrgData(t *testing.T, a, b *Store, id string, withSecrets bool) {
	t.Helper()
	eq := func(what string, x, y any) {
		t.Helper()
		if !reflect.DeepEqual(x, y) {
			xj, _ := json.Marshal(x)
			yj, _ := json.Marshal(y)
			t.Errorf("%s of %s differs:\n source %s\n import %s", what, id, xj, yj)
		}
	}
	oa, err := a.GetOrg(id)
	must(t, err)
	ob, err := b.GetOrg(id)
	must(t, err)
	if !withSecrets {
		oa.SCIMTokenHash, oa.SCIMTokenCreated, oa.SCIMTokenLastUsed = nil, time.Time{}, time.Time{}
	}
	eq("org", oa, ob)
	da, err := a.ListDomains(id)
	must(t, err)
	db, err := b.ListDomains(id)
	must(t, err)
	eq("domains", da, db)
	for _, d := range da {
		if d.Status == DomainVerified {
			holder, err := b.OrgForDomain(d.Name)
			must(t, err)
			eq("verified domain "+d.Name, id, holder)
		}
	}
	ua, na, err := a.ListUsers(id, 0, -1)
	must(t, err)
	ub, nb, err := b.ListUsers(id, 0, -1)
	must(t, err)
	eq("user count", na, nb)
	if !withSecrets {
		for _, u := range ua {
			u.PasswordHash = ""
		}
	}
	eq("users", ua, ub)
	for _, u := range ua {
		byName, err := b.UserByUserName(id, strings.ToUpper(u.UserName))
		must(t, err)
		eq("user by userName", u.ID, byName.ID)
		if u.ExternalID != "" {
			byExt, err := b.UserByExternalID(id, u.ExternalID)
			must(t, err)
			eq("user by externalId", u.ID, byExt.ID)
		}
		for _, e := range u.Emails {
			ia, err := a.UserIDsByEmail(id, e.Value)
			must(t, err)
			ib, err := b.UserIDsByEmail(id, e.Value)
			must(t, err)
			eq("users by email "+e.Value, ia, ib)
		}
		ga, err := a.GroupsOfUser(id, u.ID)
		must(t, err)
		gb, err := b.GroupsOfUser(id, u.ID)
		must(t, err)
		eq("groups of "+u.UserName, ga, gb)
		if u.Source == SourceLocal {
			la, err := a.LocalAccountsByEmail(u.UserName)
			must(t, err)
			lb, err := b.LocalAccountsByEmail(u.UserName)
			must(t, err)
			if !withSecrets {
				for _, l := range la {
					l.PasswordHash = ""
				}
			}
			eq("local accounts of "+u.UserName, la, lb)
		}
	}
	gra, nga, err := a.ListGroups(id, 0, -1)
	must(t, err)
	grb, ngb, err := b.ListGroups(id, 0, -1)
	must(t, err)
	eq("group count", nga, ngb)
	eq("groups", gra, grb)
	for _, g := range gra {
		ia, err := a.GroupIDsByDisplayName(id, g.DisplayName, 0)
		must(t, err)
		ib, err := b.GroupIDsByDisplayName(id, g.DisplayName, 0)
		must(t, err)
		eq("groups named "+g.DisplayName, ia, ib)
	}
	sa, err := a.StoredBytes(id)
	must(t, err)
	sb, err := b.StoredBytes(id)
	must(t, err)
	if withSecrets {
		eq("stored bytes", sa, sb)
	} else if sb <= 0 || sb > sa {
		t.Errorf("stored bytes of %s: %d imported, %d in the source", id, sb, sa)
	}
	aa, err := a.ListAudit(id, 1000)
	must(t, err)
	ab, err := b.ListAudit(id, 1000)
	must(t, err)
	eq("audit", aa, ab)
	pa, err := a.PendingInvitations(id)
	must(t, err)
	pb, err := b.PendingInvitations(id)
	must(t, err)
	if withSecrets {
		eq("pending invitations", pa, pb)
	} else if len(pb) != 0 {
		t.Errorf("pending invitations of %s imported without secrets: %v", id, pb)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	src := newTestStore(t)
	f := fillExportFixture(t, src)
	data := exportBytes(t, src, ExportOptions{WithSecrets: true})

	dst := newTestStore(t)
	stats, err := importBytes(dst, data, moveAll)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	want := ExportStats{recSecret: 2, recAudit: 3, recOrg: 2, recDomain: 4, recUser: 14, recGroup: 6, recDeprovisioned: 8, recInvitation: 2}
	if !reflect.DeepEqual(stats, want) {
		t.Errorf("import stats %v, want %v", stats, want)
	}
	for _, id := range f.orgs {
		sameOrgData(t, src, dst, id, true)
		// The deprovisioned user's identifiers are still refused.
		dep, err := dst.Deprovisioned(id, "ext-4", "", "")
		must(t, err)
		if !dep {
			t.Errorf("%s: deprovisioning marker lost", id)
		}
		dep, err = dst.Deprovisioned(id, "", "USER4@"+id+".example", "")
		must(t, err)
		if !dep {
			t.Errorf("%s: deprovisioned userName lost", id)
		}
		// Sessions, AuthnRequests and the replay cache stay behind.
		if _, err := dst.GetSession("sess-" + id); !errors.Is(err, ErrNotFound) {
			t.Errorf("session of %s imported: %v", id, err)
		}
		if _, err := dst.PendingAuthnRequest("req-" + id); !errors.Is(err, ErrNotFound) {
			t.Errorf("AuthnRequest of %s imported: %v", id, err)
		}
		if used, err := dst.ReplayRecorded("replay-" + id); err != nil || used {
			t.Errorf("replay key of %s imported: %v %v", id, used, err)
		}
	}
	inv, err := dst.GetInvitation(f.inviteToken)
	must(t, err)
	if inv.OrgID != "globex" || inv.Purpose != InviteUser {
		t.Errorf("invitation %+v", inv)
	}
	for _, name := range []string{"session-key", "upstream-jwt-es256/42"} {
		a, err := src.GetOrCreateSecret(name, func() ([]byte, error) { return []byte("new"), nil })
		must(t, err)
		b, err := dst.GetOrCreateSecret(name, func() ([]byte, error) { return []byte("new"), nil })
		must(t, err)
		if !bytes.Equal(a, b) {
			t.Errorf("secret %s: %q imported as %q", name, a, b)
		}
	}
	ga, err := src.ListAudit("", 100)
	must(t, err)
	gb, err := dst.ListAudit("", 100)
	must(t, err)
	if !reflect.DeepEqual(ga, gb) {
		t.Errorf("gateway audit trail differs")
	}
	// The imported store works like one that was never exported: the
	// owner signs in with the exported password hash, and writes keep the
	// indexes.
	owner, err := dst.LocalAccountsByEmail("OWNER@acme.example")
	must(t, err)
	if len(owner) != 1 || owner[0].PasswordHash == "" {
		t.Fatalf("owner account %+v", owner)
	}
	if err := dst.CreateUser(&User{OrgID: "acme", UserName: "user0@ACME.example", Source: SourceSCIM}); !errors.Is(err, ErrConflict) {
		t.Errorf("userName uniqueness after import: %v", err)
	}

	sameKeys(t, src, dst)

	// A second export of the imported store is the same file but for its
	// time.
	again := exportBytes(t, dst, ExportOptions{WithSecrets: true})
	if a, b := dropHeader(data), dropHeader(again); !bytes.Equal(a, b) {
		t.Errorf("export of the imported store differs from the original export")
	}
}

func dropHeader(b []byte) []byte {
	_, rest, _ := bytes.Cut(b, []byte("\n"))
	return rest
}

func TestExportLeavesSecretsOutByDefault(t *testing.T) {
	src := newTestStore(t)
	f := fillExportFixture(t, src)
	data := exportBytes(t, src, ExportOptions{})
	for _, leak := range []string{
		f.ownerHash, "argon2id", f.inviteToken, "password_hash", "scim_token_hash",
		`"type":"secret"`, `"type":"invitation"`, "session-key", "c2Vzc2lvbi1rZXk", // base64 of "session-key"
	} {
		if bytes.Contains(data, []byte(leak)) {
			t.Errorf("export without secrets contains %q", leak)
		}
	}
	var h ExportHeader
	must(t, json.Unmarshal(bytes.SplitN(data, []byte("\n"), 2)[0], &h))
	if h.WithSecrets || !h.All || !slices.Equal(h.Orgs, f.orgs) {
		t.Errorf("header %+v", h)
	}

	dst := newTestStore(t)
	if _, err := importBytes(dst, data, ImportOptions{TrustDomains: true}); err != nil {
		t.Fatalf("Import: %v", err)
	}
	for _, id := range f.orgs {
		sameOrgData(t, src, dst, id, false)
		o, err := dst.GetOrg(id)
		must(t, err)
		if len(o.SCIMTokenHash) != 0 || !o.SCIMTokenCreated.IsZero() {
			t.Errorf("%s: SCIM token imported without secrets", id)
		}
	}
	// The destination keeps (or makes) its own keys.
	k, err := dst.GetOrCreateSecret("session-key", func() ([]byte, error) { return []byte("fresh"), nil })
	must(t, err)
	if string(k) != "fresh" {
		t.Errorf("session key %q came with an export without secrets", k)
	}
}

func TestExportOneOrg(t *testing.T) {
	src := newTestStore(t)
	fillExportFixture(t, src)
	data := exportBytes(t, src, ExportOptions{Orgs: []string{"globex"}, WithSecrets: true})
	if bytes.Contains(data, []byte(`"org_id":"acme"`)) || bytes.Contains(data, []byte(`"type":"secret"`)) ||
		bytes.Contains(data, []byte("gateway.start")) {
		t.Error("an export of one organization carries another's or gateway-wide records")
	}
	dst := newTestStore(t)
	if _, err := importBytes(dst, data, ImportOptions{TrustDomains: true}); err != nil {
		t.Fatalf("Import: %v", err)
	}
	orgs, err := dst.ListOrgs()
	must(t, err)
	if len(orgs) != 1 || orgs[0].ID != "globex" {
		t.Fatalf("imported orgs %v", orgs)
	}
	sameOrgData(t, src, dst, "globex", true)
	if ev, err := dst.ListAudit("", 10); err != nil || len(ev) != 0 {
		t.Errorf("gateway audit imported from a one-org export: %v %v", ev, err)
	}

	// One organization out of a full export.
	full := exportBytes(t, src, ExportOptions{WithSecrets: true})
	dst2 := newTestStore(t)
	if _, err := importBytes(dst2, full, ImportOptions{Orgs: []string{"acme"}, TrustDomains: true}); err != nil {
		t.Fatalf("Import --org acme: %v", err)
	}
	orgs, err = dst2.ListOrgs()
	must(t, err)
	if len(orgs) != 1 || orgs[0].ID != "acme" {
		t.Fatalf("imported orgs %v", orgs)
	}
	sameOrgData(t, src, dst2, "acme", true)
	k, err := dst2.GetOrCreateSecret("session-key", func() ([]byte, error) { return []byte("fresh"), nil })
	must(t, err)
	if string(k) != "fresh" {
		t.Error("a one-org import took the gateway's secrets")
	}
	if _, err := dst2.Export(&bytes.Buffer{}, ExportOptions{Orgs: []string{"nope"}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("export of an unknown org: %v", err)
	}
	if _, err := importBytes(newTestStore(t), full, ImportOptions{Orgs: []string{"nope"}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("import of an org the file lacks: %v", err)
	}
}

// TestImportRefusesCorruptFile breaks one line of a good export in
// several ways; each import fails naming the line and writes nothing.
func TestImportRefusesCorruptFile(t *testing.T) {
	src := newTestStore(t)
	fillExportFixture(t, src)
	good := exportBytes(t, src, ExportOptions{WithSecrets: true})
	lines := strings.Split(strings.TrimSuffix(string(good), "\n"), "\n")
	// The last group of the last organization: everything before it would
	// be written by a careless importer.
	last := -1
	for i, l := range lines {
		if strings.HasPrefix(l, `{"type":"group"`) {
			last = i
		}
	}
	if last < 0 {
		t.Fatal("no group line")
	}
	replace := func(i int, l string) string {
		c := slices.Clone(lines)
		c[i] = l
		return strings.Join(c, "\n") + "\n"
	}
	var g groupRecord
	must(t, json.Unmarshal([]byte(lines[last]), &g))
	withMember := func(m string) string {
		c := *g.Group
		c.Members = append(slices.Clone(c.Members), m)
		b, _ := json.Marshal(&groupRecord{recGroup, &c})
		return string(b)
	}
	cases := []struct {
		name, data string
		line       int
		msg        string
	}{
		{"bad JSON", replace(last, `{"type":"group",`), last + 1, "not a JSON object"},
		{"unknown member", replace(last, withMember("no-such-user")), last + 1, "not a user of the organization"},
		{"unknown field", replace(last, strings.Replace(lines[last], `"type":"group"`, `"type":"group","colour":"red"`, 1)), last + 1, "unknown field"},
		{"unknown type", replace(last, `{"type":"widget"}`), last + 1, "unknown record type"},
		{"truncated", strings.Join(lines[:last+1], "\n") + "\n", last + 2, "without its end line"},
		{"count", replace(len(lines)-1, `{"type":"end","records":1}`), len(lines), "the end line counts 1"},
		{"header", replace(0, `{"format":"something-else","version":1}`), 1, "format"},
		{"version", replace(0, strings.Replace(lines[0], `"version":1`, `"version":2`, 1)), 1, "version 2"},
	}
	for i, l := range lines {
		if strings.HasPrefix(l, `{"type":"org","id":"globex"`) {
			var o orgRecord
			must(t, json.Unmarshal([]byte(l), &o))
			o.BackupLogin = "no-such-user"
			b, _ := json.Marshal(&o)
			cases = append(cases, struct {
				name, data string
				line       int
				msg        string
			}{"backup login", replace(i, string(b)), len(lines), "backup login"})
		}
	}
	cases = append(cases, struct {
		name, data string
		line       int
		msg        string
	}{"org listed twice", replace(0, strings.Replace(lines[0], `"orgs":["acme","globex"]`, `"orgs":["acme","globex","acme"]`, 1)), 1, "listed twice"})
	// The same userName in another case is a duplicate (identity.Key).
	// It is found on whichever of the two lines comes second (users are
	// in ID order).
	user0, user1 := -1, -1
	for i, l := range lines {
		switch {
		case strings.Contains(l, `"user_name":"User0@acme.example"`):
			user0 = i
		case strings.Contains(l, `"user_name":"User1@acme.example"`):
			user1 = i
		}
	}
	cases = append(cases, struct {
		name, data string
		line       int
		msg        string
	}{"duplicate userName", replace(user1, strings.Replace(lines[user1], "User1@acme", "USER0@ACME", 1)), max(user0, user1) + 1, "userName"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := newTestStore(t)
			before := rawKeys(t, dst, "")
			_, err := importBytes(dst, []byte(tc.data), ImportOptions{})
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("line %d:", tc.line)) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not name line %d and %q", err, tc.line, tc.msg)
			}
			if after := rawKeys(t, dst, ""); !slices.Equal(before, after) {
				t.Errorf("a refused import wrote %d keys: %v", len(after)-len(before), after)
			}
		})
	}
}

func TestImportExistingOrg(t *testing.T) {
	src := newTestStore(t)
	fillExportFixture(t, src)
	data := exportBytes(t, src, ExportOptions{Orgs: []string{"acme"}})

	dst := newTestStore(t)
	mkOrg(t, dst, "acme")
	stale := mkUser(t, dst, "acme", "stale@acme.example", "stale@acme.example")
	must(t, dst.AddDomain(&Domain{OrgID: "acme", Name: "acme.example", Status: DomainVerified}))
	before := rawKeys(t, dst, "")
	if _, err := importBytes(dst, data, ImportOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("import over an existing org: %v, want ErrExists", err)
	}
	if after := rawKeys(t, dst, ""); !slices.Equal(before, after) {
		t.Fatal("a refused import changed the store")
	}
	if _, err := importBytes(dst, data, ImportOptions{Replace: true, TrustDomains: true}); err != nil {
		t.Fatalf("import --replace: %v", err)
	}
	if _, err := dst.GetUser("acme", stale.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the replaced org's user survived: %v", err)
	}
	sameOrgData(t, src, dst, "acme", false)
}

// TestImportReplaceWithSecrets imports a file with pending set-password
// links over the organizations it came from, twice: the links of the
// replaced organizations (which DeleteOrg leaves to expire) do not stand
// in the way, and still work afterwards.
func TestImportReplaceWithSecrets(t *testing.T) {
	s := newTestStore(t)
	f := fillExportFixture(t, s)
	data := exportBytes(t, s, ExportOptions{WithSecrets: true})
	for range 2 {
		if _, err := importBytes(s, data, ImportOptions{Replace: true}); err != nil {
			t.Fatalf("import --replace over the source: %v", err)
		}
	}
	inv, err := s.GetInvitation(f.inviteToken)
	must(t, err)
	if _, _, err := s.RedeemInvitation(inv.TokenHash, "$argon2id$new"); err != nil {
		t.Errorf("redeeming a re-imported link: %v", err)
	}
	again := exportBytes(t, s, ExportOptions{WithSecrets: true, Orgs: []string{"acme"}})
	if !bytes.Contains(again, []byte(`"state":"active"`)) {
		t.Error("acme lost its active state")
	}
}

// TestImportVerifiedDomainConflict: a domain the file has verified that
// another organization of the store holds is refused before anything is
// written, whether the import keeps verified status or not (the store
// refuses even a pending claim of a domain another organization holds).
func TestImportVerifiedDomainConflict(t *testing.T) {
	src := newTestStore(t)
	fillExportFixture(t, src)
	data := exportBytes(t, src, ExportOptions{Orgs: []string{"acme"}})

	dst := newTestStore(t)
	mkOrg(t, dst, "other")
	must(t, dst.AddDomain(&Domain{OrgID: "other", Name: "acme.example", Status: DomainVerified}))
	before := rawKeys(t, dst, "")
	for _, replace := range []bool{false, true} {
		if _, err := importBytes(dst, data, ImportOptions{Replace: replace, TrustDomains: true}); !errors.Is(err, ErrConflict) {
			t.Fatalf("import claiming another org's verified domain (replace %v): %v, want ErrConflict", replace, err)
		}
	}
	if after := rawKeys(t, dst, ""); !slices.Equal(before, after) {
		t.Fatal("a refused import changed the store")
	}
	if _, err := importBytes(dst, data, ImportOptions{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("import naming another org's verified domain: %v, want ErrConflict", err)
	}
	if after := rawKeys(t, dst, ""); !slices.Equal(before, after) {
		t.Fatal("a refused import changed the store")
	}
}

// TestImportDomainsPendingByDefault: a file cannot claim a domain for
// good. Without TrustDomains, a domain verified in the file (by DNS or
// vouched for by an operator, which the periodic re-check skips) is
// imported pending, routes nothing, and is listed; with it, it keeps its
// status and who verified it.
func TestImportDomainsPendingByDefault(t *testing.T) {
	src := newTestStore(t)
	mkOrg(t, src, "evil")
	must(t, src.AddDomain(&Domain{OrgID: "evil", Name: "bank.example", Token: "t1", Status: DomainVerified, VerifiedBy: "operator", LastResult: "verified by the operator"}))
	must(t, src.AddDomain(&Domain{OrgID: "evil", Name: "evil.example", Token: "t2", Status: DomainVerified, VerifiedBy: "dns"}))
	must(t, src.AddDomain(&Domain{OrgID: "evil", Name: "later.example", Token: "t3"}))
	data := exportBytes(t, src, ExportOptions{})

	dst := newTestStore(t)
	res, err := dst.Import(bytes.NewReader(data), ImportOptions{})
	must(t, err)
	want := []ImportedDomain{{Org: "evil", Name: "bank.example", VerifiedBy: "operator"}, {Org: "evil", Name: "evil.example", VerifiedBy: "dns"}}
	if !reflect.DeepEqual(res.PendingDomains, want) {
		t.Errorf("pending domains %+v, want %+v", res.PendingDomains, want)
	}
	for _, name := range []string{"bank.example", "evil.example", "later.example"} {
		d, err := dst.GetDomain("evil", name)
		must(t, err)
		if d.Status != DomainPending || d.VerifiedBy != "" || !d.VerifiedAt.IsZero() {
			t.Errorf("%s imported as %+v, want pending", name, d)
		}
		if _, err := dst.OrgForDomain(name); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s routes to an organization after an import without --trust-domains: %v", name, err)
		}
	}

	trusted := newTestStore(t)
	res, err = trusted.Import(bytes.NewReader(data), ImportOptions{TrustDomains: true})
	must(t, err)
	if len(res.PendingDomains) != 0 {
		t.Errorf("pending domains with TrustDomains: %+v", res.PendingDomains)
	}
	d, err := trusted.GetDomain("evil", "bank.example")
	must(t, err)
	if d.Status != DomainVerified || d.VerifiedBy != "operator" {
		t.Errorf("trusted import: %+v", d)
	}
	if holder, err := trusted.OrgForDomain("bank.example"); err != nil || holder != "evil" {
		t.Errorf("trusted import: bank.example held by %q (%v)", holder, err)
	}
}

// TestImportGatewayRecordsOnlyWhenAsked: an export of everything with
// secrets brings the gateway's keys and its gateway-wide audit trail only
// with WithSecrets and GatewayAudit; without them they are left out and
// named. A secret name the gateway does not use is refused at check
// time, by line; asking for what the file lacks is refused; a dry run
// tells what would be written and writes nothing.
func TestImportGatewayRecordsOnlyWhenAsked(t *testing.T) {
	src := newTestStore(t)
	fillExportFixture(t, src)
	full := exportBytes(t, src, ExportOptions{WithSecrets: true})
	keep := func(s *Store, name string) string {
		t.Helper()
		v, err := s.GetOrCreateSecret(name, func() ([]byte, error) { return []byte("own " + name), nil })
		must(t, err)
		return string(v)
	}

	dst := newTestStore(t)
	res, err := dst.Import(bytes.NewReader(full), ImportOptions{TrustDomains: true})
	must(t, err)
	if want := []string{"session-key", "upstream-jwt-es256/42"}; !slices.Equal(res.SkippedSecrets, want) || len(res.Secrets) != 0 {
		t.Errorf("secrets %v, skipped %v; want none written, %v skipped", res.Secrets, res.SkippedSecrets, want)
	}
	if res.SkippedGatewayAudit != 1 || res.Stats[recSecret] != 0 {
		t.Errorf("result %+v", res)
	}
	if v := keep(dst, "session-key"); v != "own session-key" {
		t.Errorf("session key %q taken from the file without WithSecrets", v)
	}
	if ev, err := dst.ListAudit("", 10); err != nil || len(ev) != 0 {
		t.Errorf("gateway audit imported without GatewayAudit: %v %v", ev, err)
	}

	dst = newTestStore(t)
	res, err = dst.Import(bytes.NewReader(full), ImportOptions{WithSecrets: true, GatewayAudit: true})
	must(t, err)
	if want := []string{"session-key", "upstream-jwt-es256/42"}; !slices.Equal(res.Secrets, want) || len(res.SkippedSecrets) != 0 || res.SkippedGatewayAudit != 0 {
		t.Errorf("result %+v; want secrets %v", res, want)
	}
	if v := keep(dst, "session-key"); v != keep(src, "session-key") {
		t.Error("session key not imported with WithSecrets")
	}
	if ev, err := dst.ListAudit("", 10); err != nil || len(ev) != 1 {
		t.Errorf("gateway audit with GatewayAudit: %v %v", ev, err)
	}

	// An unknown secret name: refused, naming the line, nothing written.
	lines := strings.Split(string(full), "\n")
	secretLine := -1
	for i, l := range lines {
		if strings.HasPrefix(l, `{"type":"secret"`) {
			secretLine = i
			break
		}
	}
	if secretLine < 0 {
		t.Fatal("no secret line")
	}
	for _, name := range []string{"admin-password", "upstream-jwt-es256/", "upstream-jwt-es256/-1", "upstream-jwt-es256/1/2", "session-key2"} {
		bad := slices.Clone(lines)
		bad[secretLine] = fmt.Sprintf(`{"type":"secret","name":%q,"value":"c2VjcmV0"}`, name)
		dst := newTestStore(t)
		before := rawKeys(t, dst, "")
		for _, opts := range []ImportOptions{{}, {WithSecrets: true}} {
			_, err := importBytes(dst, []byte(strings.Join(bad, "\n")), opts)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("line %d:", secretLine+1)) || !strings.Contains(err.Error(), "not one of the gateway's") {
				t.Errorf("secret %q: %v; want ErrInvalid naming line %d", name, err, secretLine+1)
			}
		}
		if after := rawKeys(t, dst, ""); !slices.Equal(before, after) {
			t.Errorf("secret %q: a refused import wrote %d keys", name, len(after)-len(before))
		}
	}

	// Asking for gateway records the file or the selection lacks.
	oneOrg := exportBytes(t, src, ExportOptions{Orgs: []string{"acme"}, WithSecrets: true})
	noSecrets := exportBytes(t, src, ExportOptions{})
	for _, c := range []struct {
		name string
		data []byte
		opts ImportOptions
	}{
		{"secrets of a one-org file", oneOrg, ImportOptions{WithSecrets: true}},
		{"secrets of a file without", noSecrets, ImportOptions{WithSecrets: true}},
		{"secrets with --org", full, ImportOptions{WithSecrets: true, Orgs: []string{"acme"}}},
		{"audit of a one-org file", oneOrg, ImportOptions{GatewayAudit: true}},
		{"audit with --org", full, ImportOptions{GatewayAudit: true, Orgs: []string{"acme"}}},
	} {
		dst := newTestStore(t)
		before := rawKeys(t, dst, "")
		if _, err := importBytes(dst, c.data, c.opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.name, err)
		}
		if after := rawKeys(t, dst, ""); !slices.Equal(before, after) {
			t.Errorf("%s: a refused import wrote %d keys", c.name, len(after)-len(before))
		}
	}

	// A dry run: what would be written, nothing written.
	dst = newTestStore(t)
	mkOrg(t, dst, "acme")
	before := rawKeys(t, dst, "")
	res, err = dst.Import(bytes.NewReader(full), ImportOptions{DryRun: true, Replace: true, WithSecrets: true})
	must(t, err)
	if after := rawKeys(t, dst, ""); !slices.Equal(before, after) {
		t.Errorf("a dry run wrote %d keys", len(after)-len(before))
	}
	if !slices.Equal(res.Replaced, []string{"acme"}) || !slices.Equal(res.Created, []string{"globex"}) ||
		!slices.Equal(res.Secrets, []string{"session-key", "upstream-jwt-es256/42"}) || res.SkippedGatewayAudit != 1 ||
		res.Stats[recOrg] != 2 || res.Stats[recUser] != 14 || res.Stats[recSecret] != 2 || res.Stats[recAudit] != 2 || len(res.PendingDomains) != 2 {
		t.Errorf("dry run result %+v", res)
	}
}

// swapReader reads first until it is rewound, then second: a file
// rewritten between the two passes of an import (an upload directory its
// tenant can write, a network mount).
type swapReader struct {
	first, second []byte
	r             *bytes.Reader
	rewound       bool
}

func (s *swapReader) Read(p []byte) (int, error) {
	if s.r == nil {
		s.r = bytes.NewReader(s.first)
	}
	return s.r.Read(p)
}

func (s *swapReader) Seek(off int64, whence int) (int64, error) {
	if off != 0 || whence != io.SeekStart {
		return 0, errors.New("swapReader rewinds only")
	}
	s.r, s.rewound = bytes.NewReader(s.second), true
	return 0, nil
}

// TestImportFileChangedBetweenPasses: the file an import checked is not
// the file it writes. Whatever the second read says, no record reaches an
// organization the first pass did not approve (here the existing
// "victim", which without --replace the import may not touch), the
// import fails, and the organization it had begun is removed again.
func TestImportFileChangedBetweenPasses(t *testing.T) {
	src := newTestStore(t)
	mkOrg(t, src, "evil")
	owner := &User{OrgID: "evil", UserName: "boss@evil.example", Emails: []Email{{Value: "boss@evil.example"}}, Source: SourceLocal, Role: RoleAdmin, Active: true}
	tok := sha256.Sum256([]byte("evil link"))
	must(t, src.CreateLocalUser(owner, &Invitation{TokenHash: hex.EncodeToString(tok[:]), Purpose: InviteUser, ExpiresAt: time.Now().Add(time.Hour)}))
	must(t, src.AddDomain(&Domain{OrgID: "evil", Name: "evil.example", Token: "t", Status: DomainVerified, VerifiedBy: "dns"}))
	for i := range 3 {
		mkUser(t, src, "evil", fmt.Sprintf("u%d@evil.example", i))
	}
	good := string(exportBytes(t, src, ExportOptions{Orgs: []string{"evil"}, WithSecrets: true}))
	lines := strings.Split(strings.TrimSuffix(good, "\n"), "\n")
	find := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		t.Fatalf("no line %s", prefix)
		return -1
	}
	with := func(i int, l string) string {
		c := slices.Clone(lines)
		c[i] = l
		return strings.Join(c, "\n") + "\n"
	}
	// The local admin the attacker wants in "victim", with a password
	// hash of theirs.
	admin := &User{ID: "0b0b0b0b-0000-4000-8000-000000000001", OrgID: "victim", UserName: "it@victim.example",
		Emails: []Email{{Value: "it@victim.example"}}, Source: SourceLocal, Role: RoleAdmin, Active: true,
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$YXR0YWNrZXI$aGFzaA"}
	adminLine, _ := json.Marshal(&userRecord{recUser, admin})
	userAt := find(`{"type":"user"`)
	domainAt := find(`{"type":"domain"`)
	var dom domainRecord
	must(t, json.Unmarshal([]byte(lines[domainAt]), &dom))
	dom.Name = "victim.example"
	domLine, _ := json.Marshal(&dom)

	cases := []struct{ name, second string }{
		{"a user of another org in the section", with(userAt, string(adminLine))},
		{"another header and section", strings.ReplaceAll(good, `"evil"`, `"victim"`)},
		{"a verified domain that was not checked", with(domainAt, string(domLine))},
		{"the same records, one byte changed", strings.Replace(good, "u1@evil", "u9@evil", 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := newTestStore(t)
			mkOrg(t, dst, "victim")
			mkUser(t, dst, "victim", "staff@victim.example")
			before := rawKeys(t, dst, "")
			in := &swapReader{first: []byte(good), second: []byte(c.second)}
			_, err := dst.Import(in, ImportOptions{TrustDomains: true, WithSecrets: false})
			if !in.rewound {
				t.Fatal("the import did not read the file twice")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "changed after it was checked") {
				t.Fatalf("import of a file changed between the passes: %v", err)
			}
			var victimKeys []string
			for _, k := range rawKeys(t, dst, "") {
				if strings.Contains(k, "victim") && !slices.Contains(before, k) {
					victimKeys = append(victimKeys, k)
				}
			}
			if len(victimKeys) > 0 {
				t.Errorf("the import wrote into victim: %v", victimKeys)
			}
			if accts, err := dst.LocalAccountsByEmail("it@victim.example"); err != nil || len(accts) != 0 {
				t.Errorf("local accounts of the attacker: %v %v", accts, err)
			}
			if _, err := dst.OrgForDomain("victim.example"); !errors.Is(err, ErrNotFound) {
				t.Errorf("victim.example was claimed: %v", err)
			}
			if _, err := dst.GetOrg("evil"); !errors.Is(err, ErrNotFound) {
				t.Errorf("the partly imported organization was left: %v", err)
			}
		})
	}
	// The file read the same twice imports.
	dst := newTestStore(t)
	mkOrg(t, dst, "victim")
	if _, err := dst.Import(&swapReader{first: []byte(good), second: []byte(good)}, ImportOptions{TrustDomains: true}); err != nil {
		t.Fatalf("import of an unchanged file: %v", err)
	}
}

// TestImportLargeGroup round-trips a group larger than one import
// transaction's share of members, and more users than one batch.
func TestImportLargeGroup(t *testing.T) {
	src := newTestStore(t)
	mkOrg(t, src, "big")
	n := importMemberChunk + 1500
	var ids []string
	for start := 0; start < n; start += importBatch {
		var batch []*User
		for i := start; i < min(n, start+importBatch); i++ {
			batch = append(batch, &User{OrgID: "big", UserName: fmt.Sprintf("u%05d", i), Source: SourceSCIM, Active: true})
		}
		must(t, src.CreateUsers(batch))
		for _, u := range batch {
			ids = append(ids, u.ID)
		}
	}
	must(t, src.CreateGroup(&Group{OrgID: "big", DisplayName: "Everyone", Members: ids}))
	data := exportBytes(t, src, ExportOptions{})
	dst := newTestStore(t)
	stats, err := importBytes(dst, data, ImportOptions{})
	must(t, err)
	if stats[recUser] != n || stats[recGroup] != 1 {
		t.Errorf("stats %v", stats)
	}
	sameOrgData(t, src, dst, "big", true)
}

// TestImportLargeUsers: a batch of users with large attributes, more
// than one Badger transaction holds (a share of its memtable size), is
// imported in smaller transactions.
func TestImportLargeUsers(t *testing.T) {
	src := newTestStore(t)
	mkOrg(t, src, "big")
	attrs := map[string]any{"title": strings.Repeat("t", 12_000)}
	for start := 0; start < importBatch; start += 100 {
		var batch []*User
		for i := start; i < start+100; i++ {
			batch = append(batch, &User{OrgID: "big", UserName: fmt.Sprintf("u%05d", i), Source: SourceSCIM, Active: true, SCIM: attrs})
		}
		must(t, src.CreateUsers(batch))
	}
	data := exportBytes(t, src, ExportOptions{})
	dst := newTestStore(t)
	stats, err := importBytes(dst, data, ImportOptions{})
	must(t, err)
	if stats[recUser] != importBatch {
		t.Errorf("stats %v", stats)
	}
	sameOrgData(t, src, dst, "big", true)
}

// notExported are the key prefixes an export leaves behind on purpose
// (see export.go). Any other key of the source must be in the imported
// store and the other way round, so that a record kind added to the
// store without a decision here fails TestExportImportRoundTrip.
var notExported = map[string]bool{
	pSess: true, pSessOrg: true, pSessUser: true, pSessName: true,
	pAuthn: true, pAuthnB: true, pAuthnOrg: true, pReplay: true, pSignIn: true,
	pThr: true, pThrN: true, pFlash: true,
}

func sameKeys(t *testing.T, src, dst *Store) {
	t.Helper()
	carried := func(s *Store) map[string]bool {
		m := map[string]bool{}
		for _, k := range rawKeys(t, s, "") {
			prefix, _, _ := strings.Cut(k, "/")
			// Stored-byte stripes are chosen by a hash of the resource
			// written; only their sum (compared by sameOrgData) is data.
			if notExported[prefix] || strings.HasPrefix(k, pCount+"/bytes/") {
				continue
			}
			m[k] = true
		}
		return m
	}
	a, b := carried(src), carried(dst)
	for k := range a {
		if !b[k] {
			t.Errorf("key %q of the source is not in the imported store (a record kind export.go does not know?)", k)
		}
	}
	for k := range b {
		if !a[k] {
			t.Errorf("key %q of the imported store is not in the source", k)
		}
	}
}

// TestImportHidesHalfImportedOrg stops an import's writing pass after an
// organization's users are in: a gateway sharing the store sees the
// organization inactive and without its SCIM token until the import has
// finished it, so neither sign-ins nor provisioning reach it half done.
func TestImportHidesHalfImportedOrg(t *testing.T) {
	src := newTestStore(t)
	fillExportFixture(t, src)
	data := exportBytes(t, src, ExportOptions{Orgs: []string{"acme"}, WithSecrets: true})

	dst := newTestStore(t)
	c := newImportCheck(nil, ImportOptions{})
	first := sha256.New()
	must(t, readExport(bytes.NewReader(data), hashLines(first, c.check)))
	c.digest = first.Sum(nil)
	w := newImportWriter(dst, c, ImportOptions{})
	stop := errors.New("stopped before the groups")
	err := readExport(bytes.NewReader(data), func(line int, typ string, raw []byte) error {
		if typ == recGroup {
			return stop
		}
		return w.write(line, typ, raw)
	})
	if !errors.Is(err, stop) {
		t.Fatalf("writing pass: %v", err)
	}
	must(t, w.flushUsers())
	if n, err := dst.CountUsers("acme"); err != nil || n == 0 {
		t.Fatalf("users written so far: %d %v", n, err)
	}
	o, err := dst.GetOrg("acme")
	must(t, err)
	if o.State != OrgInactive || len(o.SCIMTokenHash) != 0 {
		t.Errorf("half-imported org: state %q, SCIM token hash %x", o.State, o.SCIMTokenHash)
	}

	// The whole import finishes it.
	if _, err := importBytes(dst, data, ImportOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	o, err = dst.GetOrg("acme")
	must(t, err)
	want, err := src.GetOrg("acme")
	must(t, err)
	if o.State != OrgActive || !bytes.Equal(o.SCIMTokenHash, want.SCIMTokenHash) {
		t.Errorf("imported org: state %q, SCIM token hash %x; want active, %x", o.State, o.SCIMTokenHash, want.SCIMTokenHash)
	}
}

// TestGatewaySecretNamesKnown reads the gateway's source for the secrets
// it creates: import refuses any name gatewaySecretName does not know,
// so a secret added without adding its name here would make every
// export with secrets unimportable.
func TestGatewaySecretNamesKnown(t *testing.T) {
	call := regexp.MustCompile(`\.GetOrCreateSecret\(("[^"]*")?`)
	found := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range call.FindAllSubmatch(src, -1) {
			if m[1] == nil {
				t.Errorf("%s: GetOrCreateSecret with a name that is not a string literal; check its names against gatewaySecretName", path)
				continue
			}
			name, err := strconv.Unquote(string(m[1]))
			if err != nil {
				return err
			}
			if strings.HasSuffix(name, "/") { // a prefix, a number follows
				name += "1"
			}
			found++
			if !gatewaySecretName(name) {
				t.Errorf("%s creates secret %q, which import would refuse: add it to gatewaySecretName", path, name)
			}
		}
		return nil
	})
	must(t, err)
	if found < 3 {
		t.Errorf("found %d secrets created in the source, want at least the session key, the SP key pair and the upstream JWT keys", found)
	}
}
