-- Accounts, channels, per-channel grants and refresh tokens.
-- Portable SQL: the same file runs on SQLite and PostgreSQL. Flags are
-- BIGINT 0/1 and times are Unix milliseconds, so that sqlx's Any driver
-- reads them the same from both.

CREATE TABLE users (
    id BIGINT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);

CREATE TABLE channels (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    guests BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);

-- subject: 'role:user', 'role:dispatcher', 'role:admin' or 'user:<id>'.
CREATE TABLE grants (
    channel TEXT NOT NULL REFERENCES channels (name) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    listen BIGINT NOT NULL,
    talk BIGINT NOT NULL,
    max_priority BIGINT NOT NULL,
    dispatch BIGINT NOT NULL,
    PRIMARY KEY (channel, subject)
);

-- Only the SHA-256 of each refresh token is kept.
CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
