package store

// CountSessions counts the live sessions (expired ones are gone by their
// expiry). It reads keys only, for the active-sessions metric.
func (s *Store) CountSessions() (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	n := 0
	err := s.view(func(txn Txn) error {
		p := scanPrefix(pSess)
		it := txn.Iterator(IterOptions{Prefix: p, KeysOnly: true})
		defer it.Close()
		for it.Seek(p); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}
