-- Version 1: the first schema.
-- IDs use the "C" collation so that keyset pagination orders them bytewise,
-- as the SQLite store and Go's string comparison do, whatever the
-- database's locale.

CREATE TABLE sandboxes (
	id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	template_id    TEXT        NOT NULL,
	alias          TEXT        NOT NULL,
	state          TEXT        NOT NULL,
	runtime        TEXT        NOT NULL,
	metadata       JSONB       NOT NULL,
	env_vars       JSONB       NOT NULL,
	secure         BOOLEAN     NOT NULL,
	access_token   TEXT        NOT NULL,
	traffic_token  TEXT        NOT NULL,
	allow_internet BOOLEAN     NOT NULL,
	auto_pause     BOOLEAN     NOT NULL,
	cpu_count      INTEGER     NOT NULL,
	memory_mb      INTEGER     NOT NULL,
	disk_size_mb   INTEGER     NOT NULL,
	ip             TEXT        NOT NULL,
	started_at     TIMESTAMPTZ NOT NULL,
	end_at         TIMESTAMPTZ NOT NULL,
	ended_at       TIMESTAMPTZ NOT NULL,
	end_reason     TEXT        NOT NULL,
	updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX sandboxes_by_start ON sandboxes (started_at, id);
CREATE INDEX sandboxes_by_state ON sandboxes (state, started_at, id);
CREATE INDEX sandboxes_metadata ON sandboxes USING GIN (metadata jsonb_path_ops);

CREATE TABLE templates (
	id            TEXT        NOT NULL PRIMARY KEY,
	rootfs_dir    TEXT        NOT NULL,
	build_status  TEXT        NOT NULL,
	envd_version  TEXT        NOT NULL,
	cpu_count     INTEGER     NOT NULL,
	memory_mb     INTEGER     NOT NULL,
	disk_size_mb  INTEGER     NOT NULL,
	public        BOOLEAN     NOT NULL,
	spawn_count   BIGINT      NOT NULL,
	last_spawn_at TIMESTAMPTZ NOT NULL,
	created_at    TIMESTAMPTZ NOT NULL,
	updated_at    TIMESTAMPTZ NOT NULL
);

-- An alias names exactly one template.
CREATE TABLE template_aliases (
	alias       TEXT    NOT NULL PRIMARY KEY,
	template_id TEXT    NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
	position    INTEGER NOT NULL
);
CREATE INDEX template_aliases_by_template ON template_aliases (template_id, position);

CREATE TABLE api_keys (
	id         TEXT        NOT NULL PRIMARY KEY,
	name       TEXT        NOT NULL,
	hash       TEXT        NOT NULL UNIQUE,
	mask       TEXT        NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	last_used  TIMESTAMPTZ NOT NULL,
	revoked    BOOLEAN     NOT NULL
);

CREATE TABLE events (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	sandbox_id TEXT        NOT NULL,
	time       TIMESTAMPTZ NOT NULL,
	level      TEXT        NOT NULL,
	message    TEXT        NOT NULL
);
CREATE INDEX events_by_sandbox ON events (sandbox_id, time, id);
