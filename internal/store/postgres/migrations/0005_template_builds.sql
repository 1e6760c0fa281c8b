-- Template builds through E2B's build API. A template carries the settings
-- of its default build (ready command, user, workdir, env vars); each build
-- and the tags that name builds have tables of their own. Builds have no
-- foreign key to templates: a failed first build unregisters its template,
-- but its status stays readable.

ALTER TABLE templates ADD COLUMN ready_cmd TEXT NOT NULL DEFAULT '';
ALTER TABLE templates ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
ALTER TABLE templates ADD COLUMN workdir TEXT NOT NULL DEFAULT '';
ALTER TABLE templates ADD COLUMN envs JSONB NOT NULL DEFAULT '{}';
ALTER TABLE templates ADD COLUMN build_id TEXT NOT NULL DEFAULT '';

CREATE TABLE template_builds (
	id          TEXT PRIMARY KEY,
	template_id TEXT NOT NULL,
	team_id     TEXT NOT NULL,
	status      TEXT NOT NULL,
	reason      TEXT NOT NULL DEFAULT '',
	reason_step TEXT NOT NULL DEFAULT '',
	cpu_count   INTEGER NOT NULL DEFAULT 0,
	memory_mb   INTEGER NOT NULL DEFAULT 0,
	rootfs_dir  TEXT NOT NULL DEFAULT '',
	start_cmd   TEXT NOT NULL DEFAULT '',
	ready_cmd   TEXT NOT NULL DEFAULT '',
	user_name   TEXT NOT NULL DEFAULT '',
	workdir     TEXT NOT NULL DEFAULT '',
	envs        JSONB NOT NULL DEFAULT '{}',
	created_at  TIMESTAMPTZ NOT NULL,
	updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX template_builds_by_template ON template_builds (template_id, created_at);

CREATE TABLE template_tags (
	template_id TEXT NOT NULL,
	tag         TEXT NOT NULL,
	build_id    TEXT NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (template_id, tag)
);
