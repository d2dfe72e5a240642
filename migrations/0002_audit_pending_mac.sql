-- The audit log learns two things, so the table is rebuilt (SQLite cannot change a CHECK):
--  * the outcome 'pending': an attempt recorded before a change is sent (to Consul, to a
--    node), whose result is recorded after in its own entry; a change is never made without
--    its record, even when the result cannot be written;
--  * a keyed MAC per row ("mac", hex HMAC-SHA256 of the row's hash under the audit key kept
--    outside the database), so a chain recomputed by whoever can write the file is found.
--    Rows written before this migration have none (NULL).
-- Ids, hashes and the AUTOINCREMENT high-water mark are kept exactly.
DROP TRIGGER IF EXISTS audit_log_no_update;
DROP TRIGGER IF EXISTS audit_log_no_delete;

CREATE TABLE audit_log_v2 (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ts        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    role      TEXT    NOT NULL,
    ip        TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    outcome   TEXT    NOT NULL CHECK (outcome IN ('ok', 'denied', 'error', 'pending')),
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL,
    mac       TEXT
);
INSERT INTO audit_log_v2 (id, ts, actor, role, ip, action, target, detail, outcome, prev_hash,
                          hash)
    SELECT id, ts, actor, role, ip, action, target, detail, outcome, prev_hash, hash
    FROM audit_log ORDER BY id;
UPDATE sqlite_sequence
    SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'audit_log')
    WHERE name = 'audit_log_v2' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'audit_log');
DROP TABLE audit_log;
ALTER TABLE audit_log_v2 RENAME TO audit_log;

CREATE INDEX audit_actor_action ON audit_log (actor, action, ts);
CREATE INDEX audit_action ON audit_log (action, ts);
CREATE INDEX audit_ts ON audit_log (ts);
CREATE INDEX audit_target ON audit_log (target, id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
