-- The seed's `users` table, plus what a real service needs: timestamps, a case-insensitive unique
-- email, and indexes for the token look-ups. Token columns hold SHA-256 digests, never the tokens.
CREATE TABLE users (
    id SERIAL PRIMARY KEY NOT NULL,
    email VARCHAR(250) NOT NULL,
    hashed_password VARCHAR(250) NOT NULL,
    session_id VARCHAR(250),
    reset_token VARCHAR(250),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- The index, not application code, decides races between concurrent registrations.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_session_id_key ON users (session_id);
CREATE UNIQUE INDEX users_reset_token_key ON users (reset_token);
