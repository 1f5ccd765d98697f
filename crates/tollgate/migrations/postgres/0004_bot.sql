-- Bot: "your access is ready" notices owed to users whose key is still on its way to the
-- nodes. One row per subscription; removed when the notice is queued.
CREATE TABLE access_notices (
    subscription_id BIGINT PRIMARY KEY REFERENCES subscriptions (id),
    user_id         BIGINT NOT NULL,
    vpn_uuid        UUID NOT NULL,
    created_at      BIGINT NOT NULL
);
