package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// TestBackendContract runs the Backend contract (backend.go) against every
// backend; a backend is added with one line.
func TestBackendContract(t *testing.T) {
	onceOnly(t)
	t.Run("badger", func(t *testing.T) { runBackendContract(t, openTestBadgerBackend) })
	t.Run("postgres", func(t *testing.T) { runBackendContract(t, openTestPostgres) })
}

func openTestBadgerBackend(t *testing.T) Backend {
	t.Helper()
	b, err := newBadgerBackend(t.TempDir(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("newBadgerBackend: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// runBackendContract checks what the Store relies on from a Backend. open
// returns a new, empty backend that the test's cleanup closes.
func runBackendContract(t *testing.T, open func(t *testing.T) Backend) {
	t.Run("GetSetDelete", func(t *testing.T) {
		b := open(t)
		must(t, b.Update(func(txn Txn) error {
			if _, err := txn.Get([]byte("a")); !errors.Is(err, ErrNoKey) {
				return fmt.Errorf("Get of an absent key: %v, want ErrNoKey", err)
			}
			if err := txn.Set([]byte("a"), []byte("1"), 0); err != nil {
				return err
			}
			if err := txn.Set([]byte("b"), nil, 0); err != nil { // an empty value is a value
				return err
			}
			return txn.Set([]byte("c"), []byte("3"), 0)
		}, nil))
		wantValue(t, b, "a", "1")
		wantValue(t, b, "b", "")
		must(t, b.Update(func(txn Txn) error {
			if err := txn.Set([]byte("a"), []byte("one"), 0); err != nil {
				return err
			}
			if err := txn.Delete([]byte("nothing here")); err != nil {
				return fmt.Errorf("Delete of an absent key: %w", err)
			}
			return txn.Delete([]byte("c"))
		}, nil))
		wantValue(t, b, "a", "one")
		wantAbsent(t, b, "c")
	})

	t.Run("OwnWritesBeforeCommit", func(t *testing.T) {
		b := open(t)
		put(t, b, "k/1", "old")
		put(t, b, "k/3", "three")
		must(t, b.Update(func(txn Txn) error {
			if err := txn.Set([]byte("k/1"), []byte("new"), 0); err != nil {
				return err
			}
			if err := txn.Set([]byte("k/2"), []byte("two"), 0); err != nil {
				return err
			}
			if err := txn.Delete([]byte("k/3")); err != nil {
				return err
			}
			if v, err := txn.Get([]byte("k/1")); err != nil || string(v) != "new" {
				return fmt.Errorf("own overwrite: %q, %v", v, err)
			}
			if v, err := txn.Get([]byte("k/2")); err != nil || string(v) != "two" {
				return fmt.Errorf("own insert: %q, %v", v, err)
			}
			if _, err := txn.Get([]byte("k/3")); !errors.Is(err, ErrNoKey) {
				return fmt.Errorf("own delete: %v", err)
			}
			if got := txnKeys(txn, IterOptions{Prefix: []byte("k/")}, nil); got != "k/1 k/2" {
				return fmt.Errorf("iterator over own writes: %q", got)
			}
			return nil
		}, nil))
	})

	t.Run("ErrorDiscardsWrites", func(t *testing.T) {
		b := open(t)
		put(t, b, "kept", "1")
		boom := errors.New("boom")
		err := b.Update(func(txn Txn) error {
			if err := txn.Set([]byte("new"), []byte("x"), 0); err != nil {
				return err
			}
			if err := txn.Delete([]byte("kept")); err != nil {
				return err
			}
			if _, err := txn.Get([]byte("new")); err != nil { // sent to the server, then undone
				return err
			}
			return boom
		}, nil)
		if !errors.Is(err, boom) {
			t.Fatalf("Update returned %v, want fn's error", err)
		}
		wantAbsent(t, b, "new")
		wantValue(t, b, "kept", "1")
	})

	t.Run("Expiry", func(t *testing.T) {
		b := open(t)
		future := uint64(time.Now().Add(time.Hour).Unix())
		must(t, b.Update(func(txn Txn) error {
			for k, exp := range map[string]uint64{"e/past": 1, "e/recent": uint64(time.Now().Unix() - 1), "e/future": future, "e/never": 0} {
				if err := txn.Set([]byte(k), []byte(k), exp); err != nil {
					return err
				}
			}
			return nil
		}, nil))
		wantAbsent(t, b, "e/past")
		wantAbsent(t, b, "e/recent")
		wantValue(t, b, "e/future", "e/future")
		wantValue(t, b, "e/never", "e/never")
		if got := keys(t, b, IterOptions{Prefix: []byte("e/")}, nil); got != "e/future e/never" {
			t.Fatalf("iterator over expired records: %q", got)
		}
		if got := keys(t, b, IterOptions{Prefix: []byte("e/"), KeysOnly: true, Reverse: true}, []byte("e/\xff")); got != "e/never e/future" {
			t.Fatalf("reverse keys-only iterator over expired records: %q", got)
		}
		must(t, b.Maintain())
		wantValue(t, b, "e/future", "e/future")
	})

	t.Run("IteratorOrderAndBounds", func(t *testing.T) {
		b := open(t)
		all := []string{"p", "p\x00", "p\xfe\xff", "p\xff", "p\xff\x00", "p\xff\xff", "p\xff\xff\x01", "q", "o\xff"}
		must(t, b.Update(func(txn Txn) error {
			for _, k := range all {
				if err := txn.Set([]byte(k), []byte("v"+k), 0); err != nil {
					return err
				}
			}
			return nil
		}, nil))
		for _, c := range []struct {
			name string
			o    IterOptions
			seek string
			want []string
		}{
			{"all", IterOptions{}, "", []string{"o\xff", "p", "p\x00", "p\xfe\xff", "p\xff", "p\xff\x00", "p\xff\xff", "p\xff\xff\x01", "q"}},
			{"prefix p", IterOptions{Prefix: []byte("p")}, "p", []string{"p", "p\x00", "p\xfe\xff", "p\xff", "p\xff\x00", "p\xff\xff", "p\xff\xff\x01"}},
			{"prefix p\\xff", IterOptions{Prefix: []byte("p\xff")}, "p\xff", []string{"p\xff", "p\xff\x00", "p\xff\xff", "p\xff\xff\x01"}},
			{"prefix p\\xff\\xff", IterOptions{Prefix: []byte("p\xff\xff")}, "", []string{"p\xff\xff", "p\xff\xff\x01"}},
			{"seek inside", IterOptions{Prefix: []byte("p")}, "p\xff\x00", []string{"p\xff\x00", "p\xff\xff", "p\xff\xff\x01"}},
			{"seek between", IterOptions{Prefix: []byte("p")}, "p\x01", []string{"p\xfe\xff", "p\xff", "p\xff\x00", "p\xff\xff", "p\xff\xff\x01"}},
			{"seek past", IterOptions{Prefix: []byte("p")}, "q", nil},
			// Seeks outside the prefix's range land where Badger's do:
			// on the nearest key, valid only if it has the prefix.
			{"seek before, a key between", IterOptions{Prefix: []byte("p")}, "o", nil},
			{"seek before, none between", IterOptions{Prefix: []byte("p\xff")}, "p\xfe\xff\x00", []string{"p\xff", "p\xff\x00", "p\xff\xff", "p\xff\xff\x01"}},
			{"seek before all-0xff prefix", IterOptions{Prefix: []byte("\xff")}, "a", nil},
			{"reverse all", IterOptions{Reverse: true}, "\xff", []string{"q", "p\xff\xff\x01", "p\xff\xff", "p\xff\x00", "p\xff", "p\xfe\xff", "p\x00", "p", "o\xff"}},
			{"reverse prefix p", IterOptions{Prefix: []byte("p"), Reverse: true}, "p\xff\xff\xff", []string{"p\xff\xff\x01", "p\xff\xff", "p\xff\x00", "p\xff", "p\xfe\xff", "p\x00", "p"}},
			{"reverse prefix p\\xff", IterOptions{Prefix: []byte("p\xff"), Reverse: true}, "p\xff\xff\xff\xff", []string{"p\xff\xff\x01", "p\xff\xff", "p\xff\x00", "p\xff"}},
			{"reverse seek past, a key between", IterOptions{Prefix: []byte("p\xff"), Reverse: true}, "q", nil},
			{"reverse seek past, none between", IterOptions{Prefix: []byte("p\xff"), Reverse: true}, "p\xff\xff\x02", []string{"p\xff\xff\x01", "p\xff\xff", "p\xff\x00", "p\xff"}},
			{"reverse seek inside", IterOptions{Prefix: []byte("p"), Reverse: true}, "p\xff\x01", []string{"p\xff\x00", "p\xff", "p\xfe\xff", "p\x00", "p"}},
			{"reverse seek before", IterOptions{Prefix: []byte("p"), Reverse: true}, "o\xff\xff", nil},
			{"reverse seek at prefix", IterOptions{Prefix: []byte("p"), Reverse: true}, "p", []string{"p"}},
			{"reverse empty seek means the prefix", IterOptions{Prefix: []byte("p\xff"), Reverse: true}, "", []string{"p\xff"}},
			{"reverse rewind", IterOptions{Reverse: true}, "", []string{"q", "p\xff\xff\x01", "p\xff\xff", "p\xff\x00", "p\xff", "p\xfe\xff", "p\x00", "p", "o\xff"}},
		} {
			got := keys(t, b, c.o, []byte(c.seek))
			if want := joinKeys(c.want); got != want {
				t.Errorf("%s: got %q, want %q", c.name, got, want)
			}
		}
	})

	t.Run("IteratorPages", func(t *testing.T) {
		// More keys than one page of any backend's, forward and back.
		b := open(t)
		const n = 1100
		must(t, b.Update(func(txn Txn) error {
			for i := range n {
				if err := txn.Set(fmt.Appendf(nil, "n/%05d", i), fmt.Appendf(nil, "%d", i), 0); err != nil {
					return err
				}
			}
			return nil
		}, nil))
		for _, o := range []IterOptions{{Prefix: []byte("n/")}, {Prefix: []byte("n/"), KeysOnly: true}, {Prefix: []byte("n/"), Reverse: true}, {Prefix: []byte("n/"), Reverse: true, KeysOnly: true}} {
			seek := []byte("n/")
			if o.Reverse {
				seek = []byte("n/\xff")
			}
			must(t, b.View(func(txn Txn) error {
				it := txn.Iterator(o)
				defer it.Close()
				i := 0
				for it.Seek(seek); it.Valid(); it.Next() {
					want := i
					if o.Reverse {
						want = n - 1 - i
					}
					if k := string(it.Key()); k != fmt.Sprintf("n/%05d", want) {
						return fmt.Errorf("%+v: key %d is %q", o, i, k)
					}
					v, err := it.Value()
					if err != nil || string(v) != fmt.Sprint(want) {
						return fmt.Errorf("%+v: value of %q: %q, %v", o, it.Key(), v, err)
					}
					i++
				}
				if i != n {
					return fmt.Errorf("%+v: %d keys, want %d", o, i, n)
				}
				return nil
			}))
		}
	})

	t.Run("KeyLength", func(t *testing.T) {
		b := open(t)
		// Random bytes: PostgreSQL would compress a repetitive key under
		// its index limit.
		rng := rand.New(rand.NewPCG(3, 4))
		k := make([]byte, MaxKeyBytes+1)
		for i := range k {
			k[i] = byte(rng.UintN(256))
		}
		must(t, b.Update(func(txn Txn) error { return txn.Set(k[:MaxKeyBytes], []byte("v"), 0) }, nil))
		wantValue(t, b, string(k[:MaxKeyBytes]), "v")
		err := b.Update(func(txn Txn) error { return txn.Set(k, []byte("v"), 0) }, nil)
		if !errors.Is(err, ErrKeyTooLong) || !errors.Is(err, ErrInvalid) {
			t.Fatalf("a key of %d bytes: %v, want ErrKeyTooLong", len(k), err)
		}
		wantAbsent(t, b, string(k))
	})

	t.Run("KeyAtAgreesWithIterator", func(t *testing.T) {
		b := open(t)
		if !hasKeyAt(t, b) {
			t.Skip("this backend has no KeyAt: the Store walks an iterator")
		}
		past := uint64(time.Now().Unix() - 1)
		must(t, b.Update(func(txn Txn) error {
			for _, k := range []string{"o\xff", "p", "p\x00", "p\x01", "p\xfe\xff", "p\xff", "p\xff\xff", "q"} {
				if err := txn.Set([]byte(k), []byte("v"), 0); err != nil {
					return err
				}
			}
			return txn.Set([]byte("p\x02"), []byte("expired"), past)
		}, nil))
		for _, c := range []struct{ prefix, from string }{
			{"p", "p"}, {"p", ""}, {"p", "o"}, {"p", "p\x01"}, {"p", "p\x02"}, {"p", "p\xff"}, {"p", "q"},
			{"p\xff", "p\xff"}, {"p\xff\xff", ""}, {"", ""}, {"", "p\xfe"}, {"r", "r"},
		} {
			all := keys(t, b, IterOptions{Prefix: []byte(c.prefix), KeysOnly: true}, []byte(c.from))
			if c.from < c.prefix {
				all = keys(t, b, IterOptions{Prefix: []byte(c.prefix), KeysOnly: true}, []byte(c.prefix))
			}
			walked := strings.Fields(all)
			for n := range len(walked) + 2 {
				want := ""
				if n < len(walked) {
					want = walked[n]
				}
				var got []byte
				must(t, b.View(func(txn Txn) error {
					var err error
					got, err = txn.(keyAtTxn).KeyAt([]byte(c.prefix), []byte(c.from), n)
					return err
				}))
				if string(got) != want {
					t.Errorf("KeyAt(%q, %q, %d) = %q, want %q (the iterator's)", c.prefix, c.from, n, got, want)
				}
			}
		}
		// It records no read, so a writing transaction may not use it.
		err := b.Update(func(txn Txn) error {
			_, err := txn.(keyAtTxn).KeyAt([]byte("p"), []byte("p"), 0)
			return err
		}, nil)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("KeyAt in Update: %v, want ErrInvalid", err)
		}
	})

	t.Run("KeysOnlyValueSize", func(t *testing.T) {
		b := open(t)
		big := bytes.Repeat([]byte("x"), 100_000)
		must(t, b.Update(func(txn Txn) error {
			if err := txn.Set([]byte("s/big"), big, 0); err != nil {
				return err
			}
			if err := txn.Set([]byte("s/empty"), nil, 0); err != nil {
				return err
			}
			return txn.Set([]byte("s/small"), []byte("abc"), 0)
		}, nil))
		for _, keysOnly := range []bool{true, false} {
			must(t, b.View(func(txn Txn) error {
				it := txn.Iterator(IterOptions{Prefix: []byte("s/"), KeysOnly: keysOnly})
				defer it.Close()
				sizes := map[string]int64{}
				for it.Seek([]byte("s/")); it.Valid(); it.Next() {
					sizes[string(it.Key())] = it.ValueSize()
					v, err := it.Value()
					if err != nil || int64(len(v)) != it.ValueSize() {
						return fmt.Errorf("keysOnly=%v %q: Value %d bytes, %v; ValueSize %d", keysOnly, it.Key(), len(v), err, it.ValueSize())
					}
				}
				if sizes["s/big"] != 100_000 || sizes["s/empty"] != 0 || sizes["s/small"] != 3 || len(sizes) != 3 {
					return fmt.Errorf("keysOnly=%v: sizes %v", keysOnly, sizes)
				}
				return nil
			}))
		}
	})

	t.Run("WritesOfOneKeyInOrder", func(t *testing.T) {
		// Several writes of each key in one transaction (PostgreSQL
		// sends them together, the last of each key): what stays is
		// the last write of each.
		b := open(t)
		put(t, b, "w/gone", "old")
		put(t, b, "w/kept", "old")
		must(t, b.Update(func(txn Txn) error {
			steps := []struct {
				k, v string // v "": delete
			}{
				{"w/a", "1"}, {"w/b", "1"}, {"w/a", ""}, {"w/c", "1"}, {"w/c", "2"},
				{"w/d", ""}, {"w/e", "1"}, {"w/e", ""}, {"w/e", "3"}, {"w/gone", ""},
				{"w/kept", ""}, {"w/kept", "new"}, {"w/b", "2"},
			}
			for _, s := range steps {
				var err error
				if s.v == "" {
					err = txn.Delete([]byte(s.k))
				} else {
					err = txn.Set([]byte(s.k), []byte(s.v), 0)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}, nil))
		wantAbsent(t, b, "w/a")
		wantValue(t, b, "w/b", "2")
		wantValue(t, b, "w/c", "2")
		wantAbsent(t, b, "w/d")
		wantValue(t, b, "w/e", "3")
		wantAbsent(t, b, "w/gone")
		wantValue(t, b, "w/kept", "new")
	})

	t.Run("ReadWriteConflict", func(t *testing.T) {
		// A and B both read k and write it; A commits while B is open,
		// so B must not commit a write based on what it read.
		b := open(t)
		put(t, b, "k", "0")
		readB := make(chan struct{})
		doneA := make(chan error, 1)
		var onceA, onceB sync.Once
		go func() {
			doneA <- b.Update(func(txn Txn) error {
				if _, err := txn.Get([]byte("k")); err != nil {
					return err
				}
				onceA.Do(func() { <-readB })
				return txn.Set([]byte("k"), []byte("A"), 0)
			}, nil)
		}()
		var errA error
		errB := b.Update(func(txn Txn) error {
			v, err := txn.Get([]byte("k"))
			if err != nil {
				return err
			}
			onceB.Do(func() { close(readB); errA = <-doneA })
			return txn.Set([]byte("k"), append(v, 'B'), 0)
		}, nil)
		if errA != nil || !errors.Is(errB, ErrTxnConflict) {
			t.Fatalf("A: %v, B: %v; want A committed and B ErrTxnConflict", errA, errB)
		}
		wantValue(t, b, "k", "A")
	})

	t.Run("ReadKeyChangedConflicts", func(t *testing.T) {
		// The contract: a concurrent commit that wrote a key this
		// transaction read (changed, deleted, or created where it read
		// nothing) makes Update fail, whether this one then writes that
		// key or another.
		for _, c := range []struct {
			name   string
			seed   bool
			change func(Txn) error
		}{
			{"changed", true, func(txn Txn) error { return txn.Set([]byte("k"), []byte("changed"), 0) }},
			{"deleted", true, func(txn Txn) error { return txn.Delete([]byte("k")) }},
			{"created", false, func(txn Txn) error { return txn.Set([]byte("k"), []byte("created"), 0) }},
		} {
			for _, target := range []string{"j", "k"} {
				for _, multi := range []bool{false, true} {
					name := c.name + "/A writes " + target
					if multi {
						// A multi-key read (one exchange on PostgreSQL,
						// see prefetch.go) counts as Gets would.
						name += "/multi-key read"
					}
					t.Run(name, func(t *testing.T) {
						b := open(t)
						if c.seed {
							put(t, b, "k", "v")
						}
						var once sync.Once
						var errB error
						errA := b.Update(func(txn Txn) error {
							if multi {
								if _, err := getMany(txn, [][]byte{[]byte("i"), []byte("k")}); err != nil {
									return err
								}
							} else if _, err := txn.Get([]byte("k")); err != nil && !errors.Is(err, ErrNoKey) {
								return err
							}
							once.Do(func() { errB = b.Update(c.change, nil) })
							return txn.Set([]byte(target), []byte("from A"), 0)
						}, nil)
						if errB != nil || !errors.Is(errA, ErrTxnConflict) {
							t.Fatalf("A: %v, B: %v; want B committed and A ErrTxnConflict", errA, errB)
						}
						if target == "j" {
							wantAbsent(t, b, "j")
						}
					})
				}
			}
		}
	})

	t.Run("ReadAbsentSetThenDeletedConflicts", func(t *testing.T) {
		// A reads k absent, sets it and deletes it again (the set is
		// never sent on PostgreSQL, only the last write of a key); B
		// creates k meanwhile: A must not commit.
		b := open(t)
		var once sync.Once
		var errB error
		errA := b.Update(func(txn Txn) error {
			if _, err := txn.Get([]byte("k")); !errors.Is(err, ErrNoKey) {
				return fmt.Errorf("k: %v, want absent", err)
			}
			once.Do(func() {
				errB = b.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("B"), 0) }, nil)
			})
			if err := txn.Set([]byte("k"), []byte("A"), 0); err != nil {
				return err
			}
			if err := txn.Delete([]byte("k")); err != nil {
				return err
			}
			return txn.Set([]byte("j"), []byte("A"), 0)
		}, nil)
		if errB != nil || !errors.Is(errA, ErrTxnConflict) {
			t.Fatalf("A: %v, B: %v; want B committed and A ErrTxnConflict", errA, errB)
		}
		wantValue(t, b, "k", "B")
	})

	t.Run("WriteSkewRefused", func(t *testing.T) {
		// The invariant "x or y stays 1": A reads both and clears x, B
		// reads both and clears y. Serializable means not both commit.
		b := open(t)
		put(t, b, "x", "1")
		put(t, b, "y", "1")
		clear := func(txn Txn, mine string) error {
			for _, k := range []string{"x", "y"} {
				if _, err := txn.Get([]byte(k)); err != nil {
					return err
				}
			}
			return txn.Set([]byte(mine), []byte("0"), 0)
		}
		readB := make(chan struct{})
		doneA := make(chan error, 1)
		var onceA, onceB sync.Once
		go func() {
			doneA <- b.Update(func(txn Txn) error {
				if _, err := txn.Get([]byte("x")); err != nil {
					return err
				}
				onceA.Do(func() { <-readB })
				return clear(txn, "x")
			}, nil)
		}()
		var errA error
		errB := b.Update(func(txn Txn) error {
			if _, err := txn.Get([]byte("x")); err != nil {
				return err
			}
			if _, err := txn.Get([]byte("y")); err != nil {
				return err
			}
			onceB.Do(func() { close(readB); errA = <-doneA })
			return clear(txn, "y")
		}, nil)
		if (errA == nil) == (errB == nil) || !errors.Is(errA, ErrTxnConflict) && !errors.Is(errB, ErrTxnConflict) {
			t.Fatalf("A: %v, B: %v; want exactly one committed, the other ErrTxnConflict", errA, errB)
		}
		var x, y string
		must(t, b.View(func(txn Txn) error {
			xv, err := txn.Get([]byte("x"))
			if err != nil {
				return err
			}
			yv, err := txn.Get([]byte("y"))
			x, y = string(xv), string(yv)
			return err
		}))
		if x != "1" && y != "1" {
			t.Fatalf("write skew committed: x=%s y=%s", x, y)
		}
	})

	t.Run("UpdateNoSync", func(t *testing.T) {
		b := open(t)
		must(t, b.UpdateNoSync(func(txn Txn) error { return txn.Set([]byte("touch"), []byte("t"), 0) }, nil))
		wantValue(t, b, "touch", "t")
		boom := errors.New("boom")
		if err := b.UpdateNoSync(func(txn Txn) error {
			if err := txn.Set([]byte("touch"), []byte("lost"), 0); err != nil {
				return err
			}
			return boom
		}, nil); !errors.Is(err, boom) {
			t.Fatalf("UpdateNoSync returned %v, want fn's error", err)
		}
		wantValue(t, b, "touch", "t")
	})

	t.Run("ViewIsReadOnly", func(t *testing.T) {
		b := open(t)
		if err := b.View(func(txn Txn) error { return txn.Set([]byte("k"), []byte("v"), 0) }); err == nil {
			t.Fatal("Set in View succeeded")
		}
		wantAbsent(t, b, "k")
	})

	t.Run("Name", func(t *testing.T) {
		if n := open(t).Name(); n != "badger" && n != "postgres" {
			t.Fatalf("Name() = %q", n)
		}
	})
}

// hasKeyAt reports whether b's transactions implement keyAtTxn.
func hasKeyAt(t testing.TB, b Backend) bool {
	var ok bool
	must(t, b.View(func(txn Txn) error {
		_, ok = txn.(keyAtTxn)
		return nil
	}))
	return ok
}

func put(t testing.TB, b Backend, k, v string) {
	t.Helper()
	must(t, b.Update(func(txn Txn) error { return txn.Set([]byte(k), []byte(v), 0) }, nil))
}

func wantValue(t testing.TB, b Backend, k, want string) {
	t.Helper()
	var got []byte
	must(t, b.View(func(txn Txn) error {
		var err error
		got, err = txn.Get([]byte(k))
		return err
	}))
	if string(got) != want {
		t.Fatalf("%q = %q, want %q", k, got, want)
	}
}

func wantAbsent(t testing.TB, b Backend, k string) {
	t.Helper()
	must(t, b.View(func(txn Txn) error {
		if v, err := txn.Get([]byte(k)); !errors.Is(err, ErrNoKey) {
			return fmt.Errorf("%q = %q, %v; want ErrNoKey", k, v, err)
		}
		return nil
	}))
}

// keys lists, space-separated, the keys an iterator with o visits from seek.
func keys(t testing.TB, b Backend, o IterOptions, seek []byte) string {
	t.Helper()
	var got string
	must(t, b.View(func(txn Txn) error {
		got = txnKeys(txn, o, seek)
		return nil
	}))
	return got
}

func txnKeys(txn Txn, o IterOptions, seek []byte) string {
	if seek == nil {
		seek = o.Prefix
	}
	it := txn.Iterator(o)
	defer it.Close()
	var ks []string
	for it.Seek(seek); it.Valid(); it.Next() {
		ks = append(ks, string(it.Key()))
	}
	return joinKeys(ks)
}

func joinKeys(ks []string) string {
	var b bytes.Buffer
	for i, k := range ks {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
	}
	return b.String()
}
