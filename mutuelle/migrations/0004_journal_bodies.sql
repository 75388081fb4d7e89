-- The request and answer bodies of each journal entry, so that a publisher can record a
-- session as a suite (python -m mutuelle.suite record). Fictitious data by construction (the
-- simulator knows only fictitious beneficiaries); trimmed with the journal. JSON
-- ["<request base64>", "<answer base64>"]; NULL for entries journaled before this migration.
-- Portable: SQLite and PostgreSQL alike.
ALTER TABLE journal ADD COLUMN bodies TEXT;
