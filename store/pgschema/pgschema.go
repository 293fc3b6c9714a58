// Package pgschema holds the PostgreSQL schema of ssogate's store as
// numbered migrations, embedded in the binary: NNNN_name.sql, applied in
// order, each once, each in its own transaction with the store's schema
// first on the search path (so the files name no schema). A migration is
// never edited once released; a change is a new file.
//
// The schema_version table that records what has been applied is created
// by the store before the first migration, not by a migration, so that
// the version can always be read.
package pgschema

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.sql
var files embed.FS

// Migration is one schema change.
type Migration struct {
	Version int    // the file's number, from 1, without gaps
	Name    string // the file name
	SQL     string
}

// Migrations returns every migration in version order. It fails only on a
// malformed set of files, which a test of this package catches.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("pgschema: %w", err)
	}
	var ms []Migration
	for _, name := range names {
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || v < 1 {
			return nil, fmt.Errorf("pgschema: %s: want NNNN_name.sql", name)
		}
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("pgschema: %w", err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("pgschema: %s: versions must run 1, 2, 3... without gaps or repeats", m.Name)
		}
	}
	return ms, nil
}

// Latest is the version the last migration brings a schema to.
func Latest() int {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}
