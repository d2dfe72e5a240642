-- The inventory of server hosts and the jobs that change the cluster over SSH (the Jobs
-- issue): jobs, the nodes each involves, their steps, their log (the source of truth the
-- live events only mirror) and the undo records a rollback replays.

-- One host consulate may reach over SSH. The pinned host key is NULL until a person trusts
-- the fingerprint the host presents; a change of address or port unpins it.
CREATE TABLE nodes (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT    NOT NULL UNIQUE,
    address              TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    ssh_port             INTEGER NOT NULL DEFAULT 22 CHECK (ssh_port BETWEEN 1 AND 65535),
    ssh_user             TEXT    NOT NULL,
    ssh_key_path         TEXT    NOT NULL,
    compose_dir          TEXT    NOT NULL,
    data_dir             TEXT    NOT NULL,
    server_state         TEXT    NOT NULL DEFAULT 'unknown'
                         CHECK (server_state IN ('unknown', 'server', 'spare', 'removed')),
    host_key_type        TEXT,
    host_key_bits        INTEGER,
    host_key_fingerprint TEXT,
    host_key_pinned_at   INTEGER,
    host_key_pinned_by   TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX nodes_server_state ON nodes (server_state, name);

-- plan, prechecks, result and options are JSON objects/arrays as the API shows them.
-- AUTOINCREMENT: a job id is never reused (backups on the hosts are named after it).
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    type             TEXT    NOT NULL
                     CHECK (type IN ('node-add', 'node-remove', 'rollback', 'diagnose')),
    node             TEXT    NOT NULL,
    strategy         TEXT    CHECK (strategy IS NULL OR strategy IN ('rolling', 'full-restart')),
    state            TEXT    NOT NULL
                     CHECK (state IN ('awaiting_approval', 'queued', 'running', 'succeeded',
                                      'failed', 'cancelled', 'rolled_back', 'rejected',
                                      'interrupted')),
    reason           TEXT    NOT NULL,
    options          TEXT    NOT NULL DEFAULT '{}',
    target_job       INTEGER REFERENCES jobs (id),
    requested_by     TEXT    NOT NULL,
    requested_at     INTEGER NOT NULL,
    approved_by      TEXT,
    approved_at      INTEGER,
    rejected_by      TEXT,
    rejected_at      INTEGER,
    decision_comment TEXT,
    cancelled_by     TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    started_at       INTEGER,
    ended_at         INTEGER,
    plan             TEXT    NOT NULL DEFAULT '{}',
    prechecks        TEXT    NOT NULL DEFAULT '[]',
    result           TEXT    NOT NULL DEFAULT '{}',
    log_lines        INTEGER NOT NULL DEFAULT 0
);
-- The list filters, each in id order for keyset paging (newest first, id < before_id).
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_type ON jobs (type, id);
CREATE INDEX jobs_node ON jobs (node, id);
CREATE INDEX jobs_target ON jobs (target_job) WHERE target_job IS NOT NULL;

-- Every inventory node a job touches (the node it names and every server it edits): an
-- unfinished job keeps them from being changed or deleted.
CREATE TABLE job_nodes (
    node   TEXT    NOT NULL,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    PRIMARY KEY (node, job_id)
) WITHOUT ROWID;

CREATE TABLE job_steps (
    job_id      INTEGER NOT NULL REFERENCES jobs (id),
    seq         INTEGER NOT NULL,
    node        TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    command     TEXT,
    state       TEXT    NOT NULL
                CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped',
                                 'cancelled')),
    exit_status INTEGER,
    started_at  INTEGER,
    ended_at    INTEGER,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

-- Lines are numbered 1, 2, … per job; jobs.log_lines is the last one.
CREATE TABLE job_log (
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    line   INTEGER NOT NULL,
    ts     INTEGER NOT NULL,
    node   TEXT    NOT NULL DEFAULT '',
    stream TEXT    NOT NULL CHECK (stream IN ('info', 'stdout', 'stderr', 'error')),
    text   TEXT    NOT NULL,
    PRIMARY KEY (job_id, line)
) WITHOUT ROWID;

-- Written before the change it undoes (a job killed mid-step still knows what to restore):
--   file:  path on node held content (flag 1) or did not exist (flag 0) before the job;
--   move:  path was moved to path2 on node;
--   state: before the job, Consul on node was running (flag 1) or not (flag 0).
CREATE TABLE job_undo (
    job_id  INTEGER NOT NULL REFERENCES jobs (id),
    seq     INTEGER NOT NULL,
    kind    TEXT    NOT NULL CHECK (kind IN ('file', 'move', 'state')),
    node    TEXT    NOT NULL,
    path    TEXT    NOT NULL DEFAULT '',
    path2   TEXT    NOT NULL DEFAULT '',
    flag    INTEGER NOT NULL DEFAULT 0,
    content BLOB,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
