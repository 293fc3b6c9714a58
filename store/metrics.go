package store

import "github.com/dgraph-io/badger/v4"

// CountSessions counts the live sessions (expired ones are gone by their
// TTL). It reads keys only, for the active-sessions metric.
func (s *Store) CountSessions() (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	n := 0
	err := s.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = scanPrefix(pSess)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}
