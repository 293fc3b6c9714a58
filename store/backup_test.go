package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackupWhileWriting takes an online backup while writers go on,
// restores it and checks the restored store: everything acknowledged
// before the backup began is there, indexes and counters agree with the
// records (one consistent snapshot), and it takes writes.
func TestBackupWhileWriting(t *testing.T) {
	s := newBadgerTestStore(t)
	src := newTestStore(t) // fixture built here, imported into s so both stores are real
	fillExportFixture(t, src)
	var fixture bytes.Buffer
	_, err := src.Export(&fixture, ExportOptions{WithSecrets: true})
	must(t, err)
	_, err = s.Import(bytes.NewReader(fixture.Bytes()), moveAll)
	must(t, err)

	owner, err := s.LocalAccountsByEmail("owner@acme.example")
	must(t, err)
	must(t, s.CreateSession(&Session{ID: "sess-backup", OrgID: "acme", UserID: owner[0].ID, AuthMethod: "password", ExpiresAt: time.Now().Add(time.Hour)}))

	var acked atomic.Int64 // users whose CreateUser returned nil
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr atomic.Value
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u := &User{OrgID: "acme", UserName: fmt.Sprintf("w%d-%d@acme.example", w, i), Source: SourceSCIM, Active: true}
				if err := s.CreateUser(u); err != nil {
					writeErr.Store(err)
					return
				}
				acked.Add(1)
			}
		}()
	}
	// Let some writes land first, then back up while they continue.
	for acked.Load() < 50 {
		if writeErr.Load() != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	before := acked.Load()
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	close(stop)
	wg.Wait()
	if err, _ := writeErr.Load().(error); err != nil {
		t.Fatalf("concurrent write: %v", err)
	}
	if _, err := CheckBackup(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("CheckBackup: %v", err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	if err := LoadBackup(dir, bytes.NewReader(buf.Bytes()), nil); err != nil {
		t.Fatalf("LoadBackup: %v", err)
	}
	r, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("opening the restored store: %v", err)
	}
	defer r.Close()

	users, total, err := r.ListUsers("acme", 0, -1)
	must(t, err)
	if total != len(users) {
		t.Errorf("restored user counter %d, records %d", total, len(users))
	}
	written := 0
	for _, u := range users {
		if u.Source == SourceSCIM && u.UserName[0] == 'w' {
			written++
		}
		got, err := r.UserByUserName("acme", u.UserName)
		if err != nil || got.ID != u.ID {
			t.Fatalf("restored userName index of %s: %v", u.UserName, err)
		}
	}
	if int64(written) < before {
		t.Errorf("restored %d concurrent users, %d were acknowledged before the backup began", written, before)
	}
	t.Logf("%d users acknowledged before the backup, %d in it, %d in all", before, written, acked.Load())
	for _, id := range []string{"acme", "globex"} {
		n, err := r.StoredBytes(id)
		must(t, err)
		if n <= 0 {
			t.Errorf("stored bytes of %s: %d", id, n)
		}
	}
	sameOrgData(t, src, r, "globex", true)
	// Sessions are part of an online backup (unlike an export).
	if _, err := r.GetSession("sess-backup"); err != nil {
		t.Errorf("session not restored: %v", err)
	}
	must(t, r.CreateUser(&User{OrgID: "acme", UserName: "after-restore@acme.example", Source: SourceSCIM}))
	if err := r.CreateUser(&User{OrgID: "acme", UserName: "AFTER-restore@acme.example", Source: SourceSCIM}); !errors.Is(err, ErrConflict) {
		t.Errorf("uniqueness in the restored store: %v", err)
	}
}

func TestLoadBackupRefusesDamagedCopies(t *testing.T) {
	s := newBadgerTestStore(t)
	fillExportFixture(t, s)
	var buf bytes.Buffer
	must(t, s.Backup(&buf))
	good := buf.Bytes()
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	cases := map[string][]byte{
		"empty":          nil,
		"not a backup":   []byte("{\"format\":\"ssogate-export\"}\n"),
		"half":           good[:len(good)/2],
		"no end mark":    good[:len(good)-36],
		"no checksum":    good[:len(good)-10],
		"flipped byte":   flipped,
		"trailing bytes": append(bytes.Clone(good), 'x'),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := CheckBackup(bytes.NewReader(data)); !errors.Is(err, ErrCorruptBackup) {
				t.Errorf("CheckBackup: %v, want ErrCorruptBackup", err)
			}
			dir := t.TempDir()
			if err := LoadBackup(dir, bytes.NewReader(data), nil); err == nil {
				t.Fatal("LoadBackup accepted it")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a refused restore left %d files in the directory", len(entries))
			}
		})
	}
	// Never into a directory that holds something.
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o600))
	if err := LoadBackup(dir, bytes.NewReader(good), nil); !errors.Is(err, ErrExists) {
		t.Errorf("restore into a non-empty directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "keep")); err != nil || string(b) != "x" {
		t.Error("a refused restore touched the directory")
	}
}
