-- Version 2: indexes for listing sandboxes, resolving aliases and reading
-- a sandbox's events.

CREATE INDEX sandboxes_by_start ON sandboxes (started_at, id);
CREATE INDEX sandboxes_by_state ON sandboxes (state, started_at, id);
CREATE INDEX template_aliases_by_template ON template_aliases (template_id, position);
CREATE INDEX events_by_sandbox ON events (sandbox_id, time, id);
