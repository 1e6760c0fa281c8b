-- The isolation runtime a template's sandboxes use unless a create names
-- one (airlock template build --runtime); empty for the server's default.

ALTER TABLE templates ADD COLUMN runtime TEXT NOT NULL DEFAULT '';
