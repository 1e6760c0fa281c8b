-- Version 1: the first schema.
-- Times are UTC text in a fixed-width layout (see codec.go) so that text
-- order is time order; maps are JSON objects.

CREATE TABLE sandboxes (
	id             TEXT    NOT NULL PRIMARY KEY,
	template_id    TEXT    NOT NULL,
	alias          TEXT    NOT NULL,
	state          TEXT    NOT NULL,
	runtime        TEXT    NOT NULL,
	metadata       TEXT    NOT NULL,
	env_vars       TEXT    NOT NULL,
	secure         INTEGER NOT NULL,
	access_token   TEXT    NOT NULL,
	traffic_token  TEXT    NOT NULL,
	allow_internet INTEGER NOT NULL,
	auto_pause     INTEGER NOT NULL,
	cpu_count      INTEGER NOT NULL,
	memory_mb      INTEGER NOT NULL,
	disk_size_mb   INTEGER NOT NULL,
	ip             TEXT    NOT NULL,
	started_at     TEXT    NOT NULL,
	end_at         TEXT    NOT NULL,
	ended_at       TEXT    NOT NULL,
	end_reason     TEXT    NOT NULL,
	updated_at     TEXT    NOT NULL
) STRICT;

CREATE TABLE templates (
	id            TEXT    NOT NULL PRIMARY KEY,
	rootfs_dir    TEXT    NOT NULL,
	build_status  TEXT    NOT NULL,
	envd_version  TEXT    NOT NULL,
	cpu_count     INTEGER NOT NULL,
	memory_mb     INTEGER NOT NULL,
	disk_size_mb  INTEGER NOT NULL,
	public        INTEGER NOT NULL,
	spawn_count   INTEGER NOT NULL,
	last_spawn_at TEXT    NOT NULL,
	created_at    TEXT    NOT NULL,
	updated_at    TEXT    NOT NULL
) STRICT;

-- An alias names exactly one template.
CREATE TABLE template_aliases (
	alias       TEXT    NOT NULL PRIMARY KEY,
	template_id TEXT    NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
	position    INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
	id         TEXT    NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	hash       TEXT    NOT NULL UNIQUE,
	mask       TEXT    NOT NULL,
	created_at TEXT    NOT NULL,
	last_used  TEXT    NOT NULL,
	revoked    INTEGER NOT NULL
) STRICT;

CREATE TABLE events (
	id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	sandbox_id TEXT    NOT NULL,
	time       TEXT    NOT NULL,
	level      TEXT    NOT NULL,
	message    TEXT    NOT NULL
) STRICT;
