-- Broadcasts (docs/product.md §5): an admin's message to an audience of users (owner:
-- broadcast). A draft becomes 'sending' when confirmed; the feeder then queues one outbox row
-- per recipient, in user-id order from `after_user` (the last user queued), a chunk at a time as
-- the outbox drains, so a restart continues from there and a cancel ('cancelled', its
-- unsent rows deleted in the same transaction) is quick. Counts are copied from the outbox
-- with each progress update and when the broadcast ends.
CREATE TABLE broadcasts (
    id          BIGSERIAL PRIMARY KEY,
    created_by  BIGINT NOT NULL,
    text        TEXT NOT NULL,                 -- Telegram HTML (a photo's caption)
    photo       TEXT,                          -- https URL of a photo, if any
    buttons     TEXT NOT NULL DEFAULT '[]',   -- JSON: [[label, https URL], …]
    audience    TEXT NOT NULL,
    paid        BOOLEAN NOT NULL DEFAULT false,
    status      TEXT NOT NULL CHECK (status IN ('draft', 'sending', 'cancelled', 'done')),
    after_user  BIGINT NOT NULL DEFAULT 0,
    recipients  BIGINT NOT NULL DEFAULT 0,
    queued      BIGINT NOT NULL DEFAULT 0,
    sent        BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    blocked     BIGINT NOT NULL DEFAULT 0,
    progress_n  BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT
);
CREATE INDEX broadcasts_sending ON broadcasts (id) WHERE status = 'sending';

-- Outbox rows of a paid broadcast (allow_paid_broadcast): the sender paces them on their own
-- clock (Telegram's paid limit), apart from the free budget the other rows share.
ALTER TABLE outbox ADD COLUMN paid_broadcast BOOLEAN NOT NULL DEFAULT false;

-- When a broadcast message's Bot API call was about to start (the sender writes it first).
-- A message with a call started and no outcome was cut by a crash: it may have been sent, so
-- it is never sent again (docs/reliability.md G9).
ALTER TABLE outbox ADD COLUMN call_started_at BIGINT;
