package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func query(t *testing.T, dsn, sql string, args ...any) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, sql, args...).Scan(&s)
	return s, err
}

// A schema exists for the test, is unique, and is gone after the test.
func TestSchema(t *testing.T) {
	var dsn, first string
	t.Run("a", func(t *testing.T) {
		var schema string
		dsn, schema = Schema(t)
		first = schema
		got, err := query(t, dsn, "SELECT nspname::text FROM pg_namespace WHERE nspname = $1", schema)
		if err != nil || got != schema {
			t.Fatalf("schema %q: got %q, %v", schema, got, err)
		}
		_, second := Schema(t)
		if second == schema {
			t.Fatalf("two calls gave the same schema %q", schema)
		}
		if len(schema) > 63 || strings.Trim(schema, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Fatalf("schema name %q is not a plain identifier", schema)
		}
	})
	if dsn == "" {
		t.Skip("no server")
	}
	got, err := query(t, dsn, "SELECT count(*)::text FROM pg_namespace WHERE nspname = $1", first)
	if err != nil || got != "0" {
		t.Fatalf("schema %q after its test: count %q, %v", first, got, err)
	}
}

func execSQL(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// A dedicated server keeps committed data across Restart and Kill, and
// is unreachable while stopped.
func TestServerStopStartKill(t *testing.T) {
	s := StartServer(t)
	execSQL(t, s.DSN(), "CREATE TABLE t (v text)")
	execSQL(t, s.DSN(), "INSERT INTO t VALUES ('before restart')")
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	execSQL(t, s.DSN(), "INSERT INTO t VALUES ('before kill')")
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := query(t, s.DSN(), "SELECT 'x'"); err == nil {
		t.Fatal("a killed server answered")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	got, err := query(t, s.DSN(), "SELECT string_agg(v, ',' ORDER BY v) FROM t")
	if err != nil || got != "before kill,before restart" {
		t.Fatalf("after restart and kill: %q, %v", got, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := query(t, s.DSN(), "SELECT 'x'"); err == nil {
		t.Fatal("a stopped server answered")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
}
