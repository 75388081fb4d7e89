-- Mutuelle ANS sandboxes: one row per establishment, its identifications, engagements and
-- journal. Portable SQL: the same file runs on SQLite and PostgreSQL. Dates are ISO text
-- (YYYY-MM-DD, so they compare in order); times are POSIX seconds. The identifiers stored
-- (NIR, birth date) are the fictitious beneficiaries' (mutuelle/data).

CREATE TABLE sandboxes (
    finess TEXT PRIMARY KEY,
    -- reactor time of the last reset (seeded engagements count their age from it)
    created DOUBLE PRECISION NOT NULL,
    last_used DOUBLE PRECISION NOT NULL,
    seeded INTEGER NOT NULL DEFAULT 0,
    clock_offset DOUBLE PRECISION NOT NULL DEFAULT 0,
    fault TEXT,
    requests BIGINT NOT NULL DEFAULT 0,
    conforming BIGINT NOT NULL DEFAULT 0,
    violations_by_rule TEXT NOT NULL DEFAULT '{}',
    next_engagement BIGINT NOT NULL DEFAULT 1,
    next_record BIGINT NOT NULL DEFAULT 1
);

CREATE INDEX sandboxes_by_last_use ON sandboxes (last_used);

CREATE TABLE identifications (
    finess TEXT NOT NULL REFERENCES sandboxes (finess) ON DELETE CASCADE,
    amc TEXT NOT NULL,
    nir TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    birth_rank INTEGER NOT NULL,
    sector TEXT NOT NULL,
    first_day TEXT NOT NULL,
    last_day TEXT NOT NULL,
    -- order of arrival (most recent highest), from sandboxes.next_record
    seq BIGINT NOT NULL,
    PRIMARY KEY (finess, amc, nir, birth_date, birth_rank, sector, first_day, last_day)
);

CREATE INDEX identifications_by_seq ON identifications (finess, seq);

CREATE TABLE engagements (
    finess TEXT NOT NULL REFERENCES sandboxes (finess) ON DELETE CASCADE,
    number TEXT NOT NULL,
    seq BIGINT NOT NULL,
    amc TEXT NOT NULL,
    nir TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    birth_rank INTEGER NOT NULL,
    reference TEXT NOT NULL,
    state TEXT NOT NULL,
    -- empty for admin-seeded records; a CLC's request fingerprint otherwise
    fingerprint TEXT NOT NULL,
    -- the whole engagement, as mutuelle.rows encodes it
    record TEXT NOT NULL,
    PRIMARY KEY (finess, number)
);

CREATE INDEX engagements_of_beneficiary ON engagements (finess, amc, nir, birth_date, birth_rank);

CREATE INDEX engagements_by_seq ON engagements (finess, seq);

-- No two active engagements made by CLC for the same stay, whatever the instances racing.
CREATE UNIQUE INDEX engagements_one_active_per_stay
    ON engagements (finess, amc, nir, birth_date, birth_rank, reference)
    WHERE state = 'ACTIF' AND fingerprint <> '';

CREATE TABLE journal (
    finess TEXT NOT NULL REFERENCES sandboxes (finess) ON DELETE CASCADE,
    sequence BIGINT NOT NULL,
    -- the entry, as mutuelle.rows encodes it (codes only, never personal data)
    entry TEXT NOT NULL,
    PRIMARY KEY (finess, sequence)
);
