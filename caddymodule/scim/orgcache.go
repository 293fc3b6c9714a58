package scim

import (
	"sync"
	"time"

	"github.com/ssogate/ssogate/store"
)

// orgCacheSize bounds the organizations whose records authentication
// keeps. Only organizations that exist get in, so strangers cannot fill
// it; past the bound an arbitrary entry makes room.
const orgCacheSize = 4096

// orgCache keeps the organization records that authentication reads on
// every SCIM request, each with a store.Watch taken before it was read:
// an IdP's import sends thousands of requests a minute to one org, and
// reading its record each time is a database round trip on PostgreSQL.
// An entry is reused only while the store says nothing it covers has
// changed (a token rotation, a deletion: at once on this process, and
// within the change notifications' delay on other replicas; never while
// they may be missed, when every request reads the record again).
//
// The records are shared by the requests that reuse them and must not be
// modified.
type orgCache struct {
	mu sync.Mutex
	m  map[string]orgCacheEntry
}

type orgCacheEntry struct {
	org *store.Org
	w   store.Watch
}

// get returns the organization's record, from the cache while it is
// current; store.ErrNotFound when there is none.
func (c *orgCache) get(st *store.Store, id string) (*store.Org, error) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && !st.Changed(e.w) {
		return e.org, nil
	}
	w := st.Watch(store.WatchOrg(id))
	o, err := st.GetOrg(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.m, id)
		return nil, err
	}
	if c.m == nil {
		c.m = make(map[string]orgCacheEntry)
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= orgCacheSize {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = orgCacheEntry{org: o, w: w}
	return o, nil
}

// touched records in the cached record that the token was just used at
// at: the touch is written later, in a write that does not move the org's
// change marks (it changes nothing a re-check reads), so without this the
// cached record would ask for a touch on every request once a minute had
// passed, and the org record would be rewritten at every touch flush.
// The record is replaced by a copy, never changed: requests in flight
// share the old one.
func (c *orgCache) touched(id string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || !at.After(e.org.SCIMTokenLastUsed) {
		return
	}
	o := *e.org
	o.SCIMTokenLastUsed = at
	c.m[id] = orgCacheEntry{org: &o, w: e.w}
}
