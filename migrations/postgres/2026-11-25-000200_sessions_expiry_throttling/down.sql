DROP TABLE login_throttles;
ALTER TABLE users DROP COLUMN reset_token_expires_at;
UPDATE users SET session_id = (
    SELECT token_hash FROM sessions WHERE sessions.user_id = users.id ORDER BY created_at DESC LIMIT 1
);
DROP TABLE sessions;
