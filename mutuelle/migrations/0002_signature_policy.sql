-- A sandbox's own signature policy ("require", "report", "off"); NULL: the configuration's
-- (PUT /__admin/sandboxes/<FINESS>/signature). Portable: SQLite and PostgreSQL alike.
ALTER TABLE sandboxes ADD COLUMN signature_policy TEXT;
