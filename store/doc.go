// Package store is ssogate's persistence: organizations, domains, users,
// groups, sessions, outstanding SAML AuthnRequests, the assertion replay
// cache, audit events and gateway-wide secrets, kept in an ordered
// key-value Backend — embedded Badger for one machine (Open), or
// PostgreSQL shared by several gateway processes (OpenPostgres). Every
// invariant below is written once, here, on top of the Backend contract
// (backend.go), so callers see no difference between backends. It is the
// only package that imports Badger or pgx; no backend type or bare
// backend error crosses its API.
//
// # Guarantees
//
// Every acknowledged write is durable (Badger's SyncWrites; a committed
// PostgreSQL transaction), except TouchSession and TouchSCIMToken, whose
// times are buffered for about a second and written in one unsynced batch
// (a crash may lose that second of touches).
// Records and their secondary indexes change in the same transaction, so an
// index never points at a missing record or misses a present one. A
// transaction that loses a race with a concurrent one (ErrTxnConflict:
// both backends fail a transaction when a key it read was written
// concurrently, Badger's optimistic rule) is retried from scratch, which is why the update callbacks of UpdateOrg,
// UpdateUser and friends may run more than once and must not call back
// into the Store. Every value returned is a fresh copy the caller may
// modify.
//
// Tenant data is scoped by organization in the key itself, and everything
// that creates tenant data first checks that the organization exists in the
// same transaction, so nothing can be added to an organization that
// DeleteOrg is removing.
//
// # Key layout
//
// Values are JSON. Keys are "/"-separated; each variable segment is escaped
// ('%' as "%25", '/' as "%2F") so that it never contains '/', and a prefix
// scan of "<prefix>/<org>/" therefore never reaches another organization.
//
//	org/<org>                        Org
//	orgx/<org>                       existence marker, written only by CreateOrg and DeleteOrg
//	orgdel/<org>                     deletion in progress (the purge resumes on Open)
//	dom/<org>/<domain>               Domain
//	vdom/<domain>                    org ID holding the verified domain (at most one)
//	user/<org>/<user>                User
//	uname/<org>/<userName key>       user ID (unique); keys are identity.Key forms
//	uext/<org>/<externalId>          user ID (unique)
//	umail/<org>/<email key>/<user>   user ID, one key per user and address (not unique)
//	grp/<org>/<group>                Group
//	gname/<org>/<folded displayName>/<id> group ID (names may be shared); ASCII case folded only
//	gext/<org>/<externalId>          group ID (unique)
//	gmem/<org>/<user>/<group>        membership (GroupsOfUser scans one user, IsMember reads one key)
//	udel/<org>/<kind>/<value>        deprovisioning marker (time): kind n = userName key,
//	                                 x = externalId, m = email key (see DeprovisionUser)
//	count/users/<org>                number of users
//	count/groups/<org>               number of groups
//	count/bytes/<org>/<n>            one of 16 stripes of the bytes the org's user and group keys
//	                                 hold (above, user to udel); the total is their sum (StoredBytes)
//	count/bytesok/<org>              the stripes are complete (absent: computed by a scan on first need)
//	sess/<session>                   Session, Badger TTL = ExpiresAt
//	sessorg/<org>/<session>          {user, auth method}, same TTL
//	sessuser/<org>/<user>/<session>  marker, same TTL
//	authn/<request>                  AuthnRequest, Badger TTL = ExpiresAt
//	authnb/<binding>/<request>       marker, same TTL
//	authnorg/<org>/<request>         marker, same TTL
//	replay/<key>                     expiry time, Badger TTL = expiry
//	audit/<org>/<time>/<event>       AuditEvent; <org> is empty for gateway-wide events,
//	                                 <time> is ^UnixNano in hex so that scans run newest first;
//	                                 pruned by age and count per org (AuditPolicy)
//	signin/<org>/<time>/<ref>        SignInAttempt, newest first as in audit/; Badger TTL 30 days,
//	                                 at most MaxSignInAttempts per org (AddSignInAttempt prunes)
//	secret/<name>                    secret bytes
//	thr/<scope>/<hash>               throttle record of a key (its SHA-256, never the key), TTL = when
//	                                 it would start from zero; at most MaxKeys per scope (throttle.go)
//	thrn/<scope>/<n>                 one of 16 stripes of the scope's record count (approximate)
//	flash/<org>/<session>            a configurator flash, sealed by the caller, TTL = its expiry
//	meta/index-version               version of the key forms above (see migrate.go)
//
// Identity keys never use Unicode case folding, under which distinct
// names meet (U+212A KELVIN SIGN and k): userNames and addresses are
// keyed by identity.Key (ASCII case folded, domains as IDNA A-labels),
// group names by identity.Fold.
//
// Expiries (Badger's TTL, PostgreSQL's expires_at column) have one-second
// granularity, so records with an expiry are also checked against their
// own ExpiresAt when read.
//
// Every write transaction also moves the change counters of what it
// wrote (invalidation.go), so that callers caching what they derived from
// records learn precisely when to read them again.
package store
