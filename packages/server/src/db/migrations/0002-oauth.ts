// OAuth apps and their secrets, grants bound to one workspace, and the engine's stored artefacts.
import type { MigrationStatements } from './index.ts';

export const oauth: MigrationStatements = [
  `CREATE TABLE oauth_apps (
    id text PRIMARY KEY,
    client_id text NOT NULL UNIQUE,
    owner_user_id text REFERENCES users (id) ON DELETE CASCADE,
    owner_workspace_id text REFERENCES workspaces (id) ON DELETE CASCADE,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    logo_url text,
    homepage_url text,
    redirect_uris text[] NOT NULL,
    scopes text[] NOT NULL,
    client_type text NOT NULL CHECK (client_type IN ('confidential', 'public')),
    created_by text REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((owner_user_id IS NULL) <> (owner_workspace_id IS NULL))
  )`,
  `CREATE INDEX oauth_apps_owner_user_idx ON oauth_apps (owner_user_id)`,
  `CREATE INDEX oauth_apps_owner_workspace_idx ON oauth_apps (owner_workspace_id)`,
  // A live secret has no expiry; rotation gives the old one an expiry (the overlap window).
  `CREATE TABLE oauth_app_secrets (
    id text PRIMARY KEY,
    app_id text NOT NULL REFERENCES oauth_apps (id) ON DELETE CASCADE,
    secret_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
  )`,
  `CREATE INDEX oauth_app_secrets_app_idx ON oauth_app_secrets (app_id)`,
  `CREATE TABLE oauth_grants (
    id text PRIMARY KEY,
    app_id text NOT NULL REFERENCES oauth_apps (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id text REFERENCES workspaces (id) ON DELETE CASCADE,
    scopes text[] NOT NULL DEFAULT '{}',
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    last_used_at timestamptz
  )`,
  `CREATE INDEX oauth_grants_user_idx ON oauth_grants (user_id)`,
  `CREATE INDEX oauth_grants_app_idx ON oauth_grants (app_id)`,
  // Bearer artefacts (codes, access and refresh tokens): only the SHA-256 of the value is kept.
  `CREATE TABLE oauth_tokens (
    id_hash text PRIMARY KEY,
    kind text NOT NULL,
    grant_id text,
    payload jsonb NOT NULL,
    expires_at timestamptz NOT NULL,
    consumed_at timestamptz
  )`,
  `CREATE INDEX oauth_tokens_grant_idx ON oauth_tokens (grant_id)`,
  `CREATE INDEX oauth_tokens_expiry_idx ON oauth_tokens (expires_at)`,
  // Everything else the engine stores (sessions, interactions, device codes), by model and id.
  `CREATE TABLE oauth_payloads (
    model text NOT NULL,
    id text NOT NULL,
    payload jsonb NOT NULL,
    grant_id text,
    uid text,
    user_code text,
    expires_at timestamptz,
    consumed_at timestamptz,
    PRIMARY KEY (model, id)
  )`,
  `CREATE INDEX oauth_payloads_uid_idx ON oauth_payloads (uid) WHERE uid IS NOT NULL`,
  `CREATE INDEX oauth_payloads_user_code_idx ON oauth_payloads (user_code) WHERE user_code IS NOT NULL`,
  `CREATE INDEX oauth_payloads_grant_idx ON oauth_payloads (grant_id) WHERE grant_id IS NOT NULL`,
];
