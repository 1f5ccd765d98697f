-- Bot: "your access is ready" notices owed to users whose key is still on its way to the
-- nodes. One row per subscription; removed when the notice is queued.
CREATE TABLE access_notices (
    subscription_id INTEGER PRIMARY KEY REFERENCES subscriptions (id),
    user_id         INTEGER NOT NULL,
    vpn_uuid        BLOB NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;
