package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	badger "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Online backup of the Badger backend: a consistent copy of the whole
// database (sessions and everything else included) taken while the
// gateway runs, restored offline into an empty directory. It is Badger's
// own backup stream, wrapped so that a copy cut short (a dropped
// connection, a full disk) or damaged is refused at restore rather than
// loaded in part: a magic line, the stream in length-prefixed frames, an
// empty frame, and the SHA-256 of the stream.
//
//	"ssogate-badger-backup 1\n"
//	{uint32 big-endian length, data}...   frames of Badger's stream
//	uint32 0                              end
//	32 bytes                              SHA-256 of the frames' data
//
// Moving to another backend is what the portable export is for.

const backupMagic = "ssogate-badger-backup 1\n"

// maxBackupFrame bounds one frame, and so what a reader allocates for it.
const maxBackupFrame = 1 << 20

// ErrUnsupported: the backend cannot do what was asked (an online backup
// of PostgreSQL is the database's own business: pg_dump).
var ErrUnsupported = errors.New("not supported by this storage backend")

// ErrCorruptBackup: a backup file is truncated or damaged.
var ErrCorruptBackup = errors.New("backup is truncated or damaged")

// Backup writes a consistent copy of the whole store to w while the store
// stays in use. Only the Badger backend has it (ErrUnsupported otherwise).
// When it fails midway, w has received no end frame, so what it holds is
// refused by LoadBackup and CheckBackup.
func (s *Store) Backup(w io.Writer) error {
	b, ok := s.b.(interface{ Backup(io.Writer) error })
	if !ok {
		return fmt.Errorf("store: backup of the %s backend: %w", s.b.Name(), ErrUnsupported)
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if _, err := io.WriteString(w, backupMagic); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	fw := &frameWriter{w: w, h: sha256.New(), buf: make([]byte, 0, maxBackupFrame)}
	if err := b.Backup(fw); err != nil {
		return err
	}
	return fw.close()
}

type frameWriter struct {
	w   io.Writer
	h   hash.Hash
	buf []byte
}

func (f *frameWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := cap(f.buf) - len(f.buf)
		take := min(room, len(p))
		f.buf = append(f.buf, p[:take]...)
		p = p[take:]
		if len(f.buf) == cap(f.buf) {
			if err := f.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (f *frameWriter) flush() error {
	if len(f.buf) == 0 {
		return nil
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(f.buf)))
	if _, err := f.w.Write(hdr[:]); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if _, err := f.w.Write(f.buf); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	f.h.Write(f.buf)
	f.buf = f.buf[:0]
	return nil
}

func (f *frameWriter) close() error {
	if err := f.flush(); err != nil {
		return err
	}
	var end [4]byte
	if _, err := f.w.Write(append(end[:], f.h.Sum(nil)...)); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// frameReader returns the data of a backup's frames, and io.EOF only
// after the end frame and a matching checksum.
type frameReader struct {
	r    *bufio.Reader
	h    hash.Hash
	left int // bytes left in the current frame
	done bool
}

func newFrameReader(r io.Reader) (*frameReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, []byte(backupMagic)) {
		return nil, fmt.Errorf("store: not an ssogate Badger backup: %w", ErrCorruptBackup)
	}
	return &frameReader{r: br, h: sha256.New()}, nil
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.done {
		return 0, io.EOF
	}
	for f.left == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
			return 0, fmt.Errorf("store: backup ends without its end mark: %w", ErrCorruptBackup)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxBackupFrame {
			return 0, fmt.Errorf("store: backup frame of %d bytes: %w", n, ErrCorruptBackup)
		}
		if n == 0 {
			var sum [sha256.Size]byte
			if _, err := io.ReadFull(f.r, sum[:]); err != nil {
				return 0, fmt.Errorf("store: backup ends inside its checksum: %w", ErrCorruptBackup)
			}
			if !bytes.Equal(sum[:], f.h.Sum(nil)) {
				return 0, fmt.Errorf("store: backup checksum mismatch: %w", ErrCorruptBackup)
			}
			if _, err := f.r.ReadByte(); err != io.EOF {
				return 0, fmt.Errorf("store: data after the backup's end: %w", ErrCorruptBackup)
			}
			f.done = true
			return 0, io.EOF
		}
		f.left = int(n)
	}
	n, err := f.r.Read(p[:min(len(p), f.left)])
	f.h.Write(p[:n])
	f.left -= n
	if err == io.EOF {
		if f.left > 0 {
			return n, fmt.Errorf("store: backup ends inside a frame: %w", ErrCorruptBackup)
		}
		err = nil
	}
	return n, err
}

// CheckBackup reads a whole backup and reports whether it is complete and
// undamaged, without loading it.
func CheckBackup(r io.Reader) (int64, error) {
	fr, err := newFrameReader(r)
	if err != nil {
		return 0, err
	}
	return io.Copy(io.Discard, fr)
}

// LoadBackup restores a backup Backup wrote into dir, which must not
// exist or be empty: a backup is never merged into a store. It reads r
// twice: first to check the whole backup's frames and checksum, so that
// Badger never parses a damaged stream (a damaged length could make it
// allocate without bound), then to load it. A truncated or damaged backup
// is refused, and dir ends up either a complete store or empty. Open it
// with Open.
func LoadBackup(dir string, r io.ReadSeeker, log *zap.Logger) (err error) {
	if dir == "" {
		return fmt.Errorf("store: restore: empty directory: %w", ErrInvalid)
	}
	if log == nil {
		log = zap.NewNop()
	}
	switch entries, rerr := os.ReadDir(dir); {
	case errors.Is(rerr, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("store: restore: %w", err)
		}
	case rerr != nil:
		return fmt.Errorf("store: restore: %w", rerr)
	case len(entries) > 0:
		return fmt.Errorf("store: restore: %s is not empty (a backup is restored into an empty directory): %w", dir, ErrExists)
	}
	if _, err := CheckBackup(r); err != nil {
		return err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("store: restore: rewind: %w", err)
	}
	fr, err := newFrameReader(r)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Leave dir empty, never a store with part of the data.
			if entries, rerr := os.ReadDir(dir); rerr == nil {
				for _, e := range entries {
					_ = os.RemoveAll(dir + string(os.PathSeparator) + e.Name())
				}
			}
		}
	}()
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(false). // Close syncs everything once
		WithMetricsEnabled(false).
		WithLoggingLevel(badger.WARNING).
		WithLogger(badgerLogger{log.Named("badger")})
	db, err := badger.Open(opts)
	if err != nil {
		return fmt.Errorf("store: restore: open %s: %w", dir, err)
	}
	if err := db.Load(fr, 256); err != nil {
		_ = db.Close()
		if errors.Is(err, ErrCorruptBackup) {
			return err
		}
		return fmt.Errorf("store: restore: %w", err)
	}
	// Badger's Load stops at the end of its stream; the frames must end
	// there too.
	if _, err := io.Copy(io.Discard, fr); err != nil {
		_ = db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("store: restore: close: %w", err)
	}
	return nil
}
