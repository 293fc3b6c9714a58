-- The key-value space every store record lives in. bytea compares as
-- memcmp does, so keys sort as they do in Badger and prefix scans page in
-- the same order. expires_at is Unix seconds, 0 for never; reads hide
-- expired rows by the gateway's clock, and the partial index lets
-- housekeeping find them without a full scan.
CREATE TABLE kv (
	k bytea PRIMARY KEY,
	v bytea NOT NULL,
	expires_at bigint NOT NULL DEFAULT 0
);

CREATE INDEX kv_expires_at ON kv (expires_at) WHERE expires_at <> 0;
