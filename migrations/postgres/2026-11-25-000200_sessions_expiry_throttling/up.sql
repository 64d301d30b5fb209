-- Sessions move out of `users.session_id` into their own table, so that one user can be logged in
-- on several devices and every session has its own idle and absolute expiry.
--
-- How the move works: each user's current session (its SHA-256 digest is already what
-- `users.session_id` holds) becomes a row here with a fresh 12-hour expiry, then the column is
-- cleared. The column itself stays, because the seed's schema names it, but nothing writes it any
-- more; the down migration moves the newest session of each user back.
CREATE TABLE sessions (
    id SERIAL PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash VARCHAR(64) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    ip VARCHAR(64),
    user_agent VARCHAR(512)
);
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

INSERT INTO sessions (user_id, token_hash, created_at, last_seen_at, expires_at)
SELECT id, session_id, updated_at, now() AT TIME ZONE 'UTC', (now() AT TIME ZONE 'UTC') + INTERVAL '12 hours'
FROM users WHERE session_id IS NOT NULL;
UPDATE users SET session_id = NULL;

-- A reset token now expires; tokens issued before this migration get the default 30 minutes.
ALTER TABLE users ADD COLUMN reset_token_expires_at TIMESTAMP;
UPDATE users SET reset_token_expires_at = (now() AT TIME ZONE 'UTC') + INTERVAL '30 minutes'
WHERE reset_token IS NOT NULL;

-- Failed logins per account key (the SHA-256 of the lower-cased email), shared by every node.
-- Unknown emails are counted too, so a 429 reveals nothing about which accounts exist.
CREATE TABLE login_throttles (
    email_key VARCHAR(64) PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    last_failure_at TIMESTAMP NOT NULL
);
