-- Version 3: the command envd starts when a sandbox is created from a
-- template (E2B's startCmd); empty for none.

ALTER TABLE templates ADD COLUMN start_cmd TEXT NOT NULL DEFAULT '';
