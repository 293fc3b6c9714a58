package store

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/store/pgtest"
)

// BenchmarkBackend measures one backend transaction of each kind the Store
// runs most: a View reading one record (a session look-up), and an Update
// reading one record and writing it back (synced, and not). Badger and
// PostgreSQL (on this machine, over loopback TCP) run in the same binary so
// that their ratio is meaningful. The Parallel16 variants run 16 goroutines
// at once, as 16 client connections would: concurrent commits share syncs.
//
//	go test -run '^$' -bench BenchmarkBackend -benchtime 3s ./store
func BenchmarkBackend(b *testing.B) {
	backends := []struct {
		name string
		open func(b *testing.B) Backend
	}{
		{"badger", func(b *testing.B) Backend {
			be, err := newBadgerBackend(b.TempDir(), zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = be.Close() })
			return be
		}},
		{"postgres", func(b *testing.B) Backend {
			dsn, schema := pgtest.Schema(b)
			return openPostgresAt(b, dsn, schema)
		}},
	}
	value := make([]byte, 300) // about a session record
	const records = 1000
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			db := be.open(b)
			must(b, db.Update(func(txn Txn) error {
				for i := range records {
					if err := txn.Set(fmt.Appendf(nil, "sess/acme/%04d", i), value, uint64(time.Now().Add(time.Hour).Unix())); err != nil {
						return err
					}
				}
				return nil
			}, nil))
			get := func(i int) error {
				return db.View(func(txn Txn) error {
					_, err := txn.Get(fmt.Appendf(nil, "sess/acme/%04d", i%records))
					return err
				})
			}
			// conflicts counts the transactions the backend refused for a
			// concurrent one (the Store would retry them), per operation.
			var conflicts atomic.Int64
			rewrite := func(update func(func(Txn) error, func() []string) error, i int) error {
				for {
					err := update(func(txn Txn) error {
						k := fmt.Appendf(nil, "sess/acme/%04d", i%records)
						v, err := txn.Get(k)
						if err != nil {
							return err
						}
						return txn.Set(k, v, 0)
					}, nil)
					if !errors.Is(err, ErrTxnConflict) {
						return err
					}
					conflicts.Add(1)
				}
			}
			reportConflicts := func(b *testing.B) {
				b.ReportMetric(float64(conflicts.Swap(0))/float64(b.N), "conflicts/op")
			}
			b.Run("Get", func(b *testing.B) {
				i := 0
				for b.Loop() {
					must(b, get(i))
					i++
				}
			})
			// 16 goroutines on this machine's 2 cores: the c=16.
			b.Run("GetParallel16", func(b *testing.B) {
				b.SetParallelism(8)
				var n atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						must(b, get(int(n.Add(1))))
					}
				})
			})
			b.Run("Update", func(b *testing.B) {
				i := 0
				for b.Loop() {
					must(b, rewrite(db.Update, i))
					i++
				}
			})
			b.Run("UpdateParallel16", func(b *testing.B) {
				b.SetParallelism(8)
				var n atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						must(b, rewrite(db.Update, int(n.Add(1))))
					}
				})
				reportConflicts(b)
			})
			b.Run("UpdateNoSync", func(b *testing.B) {
				i := 0
				for b.Loop() {
					must(b, rewrite(db.UpdateNoSync, i))
					i++
				}
			})
		})
	}
}
