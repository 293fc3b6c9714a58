package scim

import (
	"hash/fnv"
	"sync"
)

// writeLocks serializes SCIM writes that would otherwise only fight over
// the same store keys: group creations and deletions, user deletions in
// one organization (they all update its user or group counter) and
// changes to one resource. User creations take no lock: the store runs
// concurrent ones in one transaction (see store.CreateUser).
// Badger resolves such races by failing all but one transaction and
// retrying the others, and an IdP that sends requests in parallel (both
// Okta and Entra ID do) can make a request exhaust its retries. Taking
// turns costs nothing: conflicting commits could not have shared a disk
// sync anyway.
type writeLocks struct {
	stripes [256]sync.Mutex
}

// lock takes the lock for key and returns its release.
func (l *writeLocks) lock(key string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	m := &l.stripes[h.Sum32()%uint32(len(l.stripes))]
	m.Lock()
	return m.Unlock
}

// Keys of writeLocks.
func orgKey(org string) string          { return org }
func resourceKey(org, id string) string { return org + "/" + id }
