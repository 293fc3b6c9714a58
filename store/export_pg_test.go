package store

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/ssogate/ssogate/store/pgtest"
)

// TestExportBadgerImportPostgres moves a deployment from Badger to
// PostgreSQL the way the README says: export everything with secrets
// from a Badger store, import into a fresh PostgreSQL schema, and compare
// the two through the store's API, indexes and counters included; the
// PostgreSQL store then exports the same file.
func TestExportBadgerImportPostgres(t *testing.T) {
	if suiteOnPostgres() {
		t.Skip("crosses backends itself; run once, in the Badger pass")
	}
	src := newBadgerTestStore(t)
	f := fillExportFixture(t, src)
	data := exportBytes(t, src, ExportOptions{WithSecrets: true})

	dsn, schema := pgtest.Schema(t)
	b, err := OpenPostgres(context.Background(), PostgresOptions{DSN: dsn, Schema: schema})
	must(t, err)
	dst, err := OpenBackend(b, Options{GCInterval: -1})
	must(t, err)
	t.Cleanup(func() { _ = dst.Close() })
	if dst.Backend().Name() != "postgres" {
		t.Fatalf("backend %s", dst.Backend().Name())
	}
	if _, err := importBytes(dst, data, moveAll); err != nil {
		t.Fatalf("Import into PostgreSQL: %v", err)
	}
	for _, id := range f.orgs {
		sameOrgData(t, src, dst, id, true)
	}
	sameKeys(t, src, dst)
	k1, err := src.GetOrCreateSecret("session-key", func() ([]byte, error) { return []byte("x"), nil })
	must(t, err)
	k2, err := dst.GetOrCreateSecret("session-key", func() ([]byte, error) { return []byte("x"), nil })
	must(t, err)
	if !bytes.Equal(k1, k2) {
		t.Error("session key not moved")
	}
	if again := exportBytes(t, dst, ExportOptions{WithSecrets: true}); !bytes.Equal(dropHeader(again), dropHeader(data)) {
		t.Error("the PostgreSQL store exports a different file")
	}
	// A corrupt file writes nothing there either.
	bad := bytes.Replace(data, []byte(`"type":"end"`), []byte(`"type":"end","x":1`), 1)
	dsn2, schema2 := pgtest.Schema(t)
	dst2b, err := OpenPostgres(context.Background(), PostgresOptions{DSN: dsn2, Schema: schema2})
	must(t, err)
	dst2, err := OpenBackend(dst2b, Options{GCInterval: -1})
	must(t, err)
	defer dst2.Close()
	before := rawKeys(t, dst2, "")
	if _, err := importBytes(dst2, bad, ImportOptions{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("corrupt import into PostgreSQL: %v", err)
	}
	if after := rawKeys(t, dst2, ""); len(after) != len(before) {
		t.Errorf("a refused import wrote %d keys", len(after)-len(before))
	}
	// The online backup is Badger's.
	if err := dst.Backup(&bytes.Buffer{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Backup of PostgreSQL: %v", err)
	}
}

// newBadgerTestStore is a Badger store whichever backend the suite runs
// on, for what only Badger does (the online backup) or a test that
// crosses backends.
func newBadgerTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
