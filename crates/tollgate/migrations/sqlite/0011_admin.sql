-- The admin console (docs/product.md §5).
--
-- audit_log: every admin action, written in the transaction of the action itself, never
-- updated or deleted (the triggers refuse it). `actor` is the admin's Telegram id, or NULL
-- for the command line; `target_user` is the user acted on, if any; `subject` names what
-- else was acted on (a flag, a node, an update, a payment). The first schema's audit_log had
-- no writer and so no rows; it is replaced by this shape.
DROP TABLE audit_log;
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       INTEGER,
    action      TEXT NOT NULL,
    target_user INTEGER,
    subject     TEXT,
    before      TEXT,
    after       TEXT,
    reason      TEXT
) STRICT;
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_target_user ON audit_log (target_user, id) WHERE target_user IS NOT NULL;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- What an admin's next text message answers (Find, grant days, balance, banner): one pending
-- question per admin, replaced by the next button that asks one.
CREATE TABLE admin_prompts (
    admin_id   INTEGER PRIMARY KEY,
    question   TEXT NOT NULL,
    asked_at   INTEGER NOT NULL
) STRICT;
