-- Version 3: teams. Every API key, sandbox and user template belongs to a
-- team; whatever existed before teams goes to the default team, which every
-- store has from the start. Zero times are stored as 0001-01-01 UTC, which
-- is what the Go zero time.Time encodes to.

CREATE TABLE teams (
	id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	name       TEXT        NOT NULL UNIQUE,
	created_at TIMESTAMPTZ NOT NULL
);

INSERT INTO teams (id, name, created_at) VALUES ('default', 'default', '0001-01-01 00:00:00+00');

ALTER TABLE api_keys ADD COLUMN team_id TEXT    NOT NULL DEFAULT 'default';
ALTER TABLE api_keys ADD COLUMN admin   BOOLEAN NOT NULL DEFAULT false;

ALTER TABLE sandboxes ADD COLUMN team_id   TEXT        NOT NULL DEFAULT 'default';
ALTER TABLE sandboxes ADD COLUMN paused_at TIMESTAMPTZ NOT NULL DEFAULT '0001-01-01 00:00:00+00';

-- '' marks a built-in template. The built-ins are the templates aliased
-- base or code-interpreter-v1; any other template that exists already was
-- built by someone, who until now was in the default team.
ALTER TABLE templates ADD COLUMN team_id TEXT NOT NULL DEFAULT '';
UPDATE templates SET team_id = 'default' WHERE id NOT IN
	(SELECT template_id FROM template_aliases WHERE alias IN ('base', 'code-interpreter-v1'));

-- A team's listing, with and without a state filter.
CREATE INDEX sandboxes_by_team ON sandboxes (team_id, started_at, id);
CREATE INDEX sandboxes_by_team_state ON sandboxes (team_id, state, started_at, id);
