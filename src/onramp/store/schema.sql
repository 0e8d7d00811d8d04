-- Onramp store schema (DuckDB). Idempotent: run on every connect.
-- Taxonomy: small tables, primary keys for clarity.
CREATE TABLE IF NOT EXISTS partners (
    pid        INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,          -- slug: S3 prefix and FTP user
    contacts   VARCHAR[] NOT NULL DEFAULT []
);
CREATE TABLE IF NOT EXISTS data_sources (
    dpid                 INTEGER PRIMARY KEY,
    owner_pid            INTEGER,         -- NULL for global device sources
    name                 VARCHAR NOT NULL,
    id_type              VARCHAR NOT NULL, -- cookie | cross_device | device_advertising_id
    inbound_id_type      VARCHAR NOT NULL, -- customer_id | platform_uuid
    id_definition        VARCHAR,          -- person | household (cross_device only)
    integration_code     VARCHAR,
    notify               VARCHAR[] NOT NULL DEFAULT [],
    error_sampling_until TIMESTAMP,
    crm_retention_days   INTEGER NOT NULL DEFAULT 720,
    is_global            BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS traits (
    sid              INTEGER PRIMARY KEY,
    name             VARCHAR NOT NULL,
    description      VARCHAR,
    data_source      INTEGER NOT NULL,
    type             VARCHAR NOT NULL,    -- onboarded | rule_based
    rule             VARCHAR,             -- SPEC §4.3; NULL = realized only by d_sid
    ttl_days         INTEGER NOT NULL DEFAULT 120,
    integration_code VARCHAR,
    folder_id        INTEGER,
    data_category    VARCHAR,
    event_type       VARCHAR
);
CREATE TABLE IF NOT EXISTS segments (
    sid        INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    owner      INTEGER NOT NULL,
    expression VARCHAR NOT NULL,
    merge_rule VARCHAR NOT NULL DEFAULT 'device_and_authenticated'
);
CREATE TABLE IF NOT EXISTS destinations (
    did          INTEGER PRIMARY KEY,
    owner        INTEGER NOT NULL,
    name         VARCHAR NOT NULL,
    master_dpid  INTEGER NOT NULL DEFAULT 0,
    partner_dpid INTEGER,
    pid_alias    VARCHAR,
    sync_type    VARCHAR NOT NULL,        -- s3 | ftp | http
    sync_mode    VARCHAR NOT NULL,        -- full | iter
    segments     INTEGER[] NOT NULL DEFAULT [],
    location     VARCHAR,
    settings     JSON                     -- everything else of the destination, as given
);
CREATE TABLE IF NOT EXISTS access_mappings (
    pid  INTEGER NOT NULL,
    dpid INTEGER NOT NULL,
    PRIMARY KEY (pid, dpid)
);

-- Identity graph: one row per undirected link, the smaller (dpid, id) end first, so a
-- pair seen from either side (sync file column order, HTTP sync) is the same link.
-- No primary key: MERGE without a key is ~10x faster on big tables (DESIGN §6).
CREATE TABLE IF NOT EXISTS links (
    env       VARCHAR NOT NULL,
    dpid_a    INTEGER NOT NULL,
    id_a      VARCHAR NOT NULL,
    dpid_b    INTEGER NOT NULL,
    id_b      VARCHAR NOT NULL,
    last_seen TIMESTAMP NOT NULL
);

-- Profiles: one row per (profile, trait) qualification. A profile is keyed by
-- (namespace DPID, ID); namespace 0 = platform UUID. Expiry is computed lazily from
-- realized_at and the trait's current ttl_days (SPEC §4.7).
CREATE TABLE IF NOT EXISTS realizations (
    env         VARCHAR NOT NULL,
    ns          INTEGER NOT NULL,
    id          VARCHAR NOT NULL,
    sid         INTEGER NOT NULL,
    realized_at TIMESTAMP NOT NULL
);

-- Job ledger: a file version is (env, name, sha256). Rows are written in the same
-- transaction as the file's effects, so a crash leaves either both or neither.
CREATE TABLE IF NOT EXISTS jobs (
    job_id     VARCHAR PRIMARY KEY,
    env        VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    ended_at   TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    env        VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    sha256     VARCHAR NOT NULL,
    uri        VARCHAR NOT NULL,
    size       BIGINT NOT NULL,
    status     VARCHAR NOT NULL,          -- applied | rejected
    reason     VARCHAR,
    job_id     VARCHAR NOT NULL,
    receipt_id VARCHAR,
    processed_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    receipt_id  VARCHAR PRIMARY KEY,
    job_id      VARCHAR NOT NULL,
    env         VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,         -- data | id_sync | rejected_files
    partner     INTEGER,
    dpid        INTEGER,
    target_dpid INTEGER,
    created_at  TIMESTAMP NOT NULL,
    body        JSON NOT NULL,            -- the §11.3 receipt object
    text        VARCHAR NOT NULL          -- the §6.2 plain-text receipt
);

-- REST API bearer tokens (docs/api.md). Only the SHA-256 of a token is stored; the token
-- itself is shown once, when created. partner NULL with role 'admin' = full access.
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id   VARCHAR PRIMARY KEY,       -- public handle: part of the token, shown by `tokens list`
    sha256     VARCHAR NOT NULL,          -- hex SHA-256 of the whole token
    role       VARCHAR NOT NULL,          -- admin | partner | metrics
    partner    INTEGER,                   -- the partner a 'partner' token speaks for
    label      VARCHAR,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);

-- Receipt mail outbox (SPEC §6.1): one message per receipt, inserted in the job's
-- transaction and never deleted; delivery moves it to sent, or parked after
-- mail.max_attempts failures. next_attempt_at doubles as the claim lease while sending.
CREATE TABLE IF NOT EXISTS mail_outbox (
    receipt_id      VARCHAR PRIMARY KEY,
    recipients      VARCHAR[] NOT NULL,
    message         BLOB NOT NULL,            -- RFC 5322 bytes, exactly as sent
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    status          VARCHAR NOT NULL,         -- pending | sent | parked
    last_error      VARCHAR,
    created_at      TIMESTAMP NOT NULL,
    sent_at         TIMESTAMP
);
