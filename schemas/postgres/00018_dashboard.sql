-- +goose Up

-- The merchant dashboard (issue 13): its users, their sessions, the
-- operator-issued password reset links, and the production activation
-- requests the operator approves.

-- A user belongs to one merchant with one role: owner (everything, settings
-- and users included), finance (uploads and sends batches, redelivers
-- callbacks) or viewer (reads). password_hash is an argon2id PHC string.
-- failed_logins counts consecutive failed sign-ins; at the limit the
-- account is locked until locked_until.
CREATE TABLE dashboard_users (
    id             text PRIMARY KEY,
    merchant_id    text NOT NULL REFERENCES merchants (id),
    email          text NOT NULL,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('owner', 'finance', 'viewer')),
    failed_logins  integer NOT NULL DEFAULT 0,
    locked_until   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX dashboard_users_email ON dashboard_users (lower(email));
CREATE INDEX dashboard_users_merchant ON dashboard_users (merchant_id);

-- A signed-in session. The cookie carries a random token; only its SHA-256
-- is stored, so a read of this table cannot sign anyone in. csrf_token is
-- the session's form token; environment is the one the user looks at.
CREATE TABLE dashboard_sessions (
    token_hash   bytea PRIMARY KEY,
    user_id      text NOT NULL REFERENCES dashboard_users (id) ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    environment  text NOT NULL DEFAULT 'sandbox' CHECK (environment IN ('sandbox', 'production')),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);

-- A password reset link the operator issued; only the token's hash is
-- kept, and a link works once.
CREATE TABLE dashboard_password_resets (
    token_hash  bytea PRIMARY KEY,
    user_id     text NOT NULL REFERENCES dashboard_users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- A merchant's request for production, listed to the operator until the
-- operator activates production (POST /operator/v1/merchants/{id}/production/activate).
CREATE TABLE activation_requests (
    merchant_id   text NOT NULL REFERENCES merchants (id),
    environment   text NOT NULL CHECK (environment = 'production'),
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, environment)
);

-- A CSV uploaded in the dashboard, kept between its validation (the invalid
-- rows are shown before anything is sent) and the user's "send"; batch_id
-- is set once it is sent.
CREATE TABLE dashboard_uploads (
    id           text PRIMARY KEY,
    merchant_id  text NOT NULL REFERENCES merchants (id),
    environment  text NOT NULL,
    user_id      text NOT NULL REFERENCES dashboard_users (id),
    file_name    text NOT NULL,
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    batch_id     text
);
CREATE INDEX dashboard_uploads_created ON dashboard_uploads (created_at);

-- +goose Down
DROP TABLE dashboard_uploads, activation_requests, dashboard_password_resets, dashboard_sessions, dashboard_users;
