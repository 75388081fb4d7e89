-- Billing (DRE-ES): the returns (578R payments, 908R rejections) of the invoices a sandbox
-- accepted, kept until the establishment acknowledges them. One row per invoice number and
-- AMC (an accepted invoice number is never accepted twice). Portable: SQLite and PostgreSQL.
-- Engagements take two more states in engagements.state: 'PAYE' and 'REJETE' (text, no DDL).

CREATE TABLE billing_returns (
    finess TEXT NOT NULL REFERENCES sandboxes (finess) ON DELETE CASCADE,
    amc TEXT NOT NULL,
    invoice_number TEXT NOT NULL,
    -- sandbox time (POSIX seconds) from which the return is delivered
    due DOUBLE PRECISION NOT NULL,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    -- the return, as mutuelle.rows encodes it (numbers, codes and amounts, no personal data)
    record TEXT NOT NULL,
    PRIMARY KEY (finess, amc, invoice_number)
);

CREATE INDEX billing_returns_by_due ON billing_returns (finess, acknowledged, due);
