-- The audit trail of authentication: one row per event (register, login, logout, reset, ...).
-- No password, token or hash is ever stored here. `user_id` has no foreign key on purpose: the
-- trail outlives deleted accounts and never blocks a rebuild of `users`. Times are UTC.
CREATE TABLE auth_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind VARCHAR(32) NOT NULL,
    user_id INTEGER,
    email VARCHAR(250),
    ip VARCHAR(45),
    user_agent VARCHAR(512),
    outcome VARCHAR(32) NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- One account's history, and clean-up by age.
CREATE INDEX auth_events_user_id_idx ON auth_events (user_id);
CREATE INDEX auth_events_created_at_idx ON auth_events (created_at);
