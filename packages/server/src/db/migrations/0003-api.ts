// Caches and their rules, machine credentials (API keys, service tokens) and idempotency records.
import type { MigrationStatements } from './index.ts';

export const api: MigrationStatements = [
  `CREATE TABLE caches (
    id text PRIMARY KEY,
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    type text NOT NULL CHECK (type IN ('postgres', 'mysql', 'mariadb', 'mssql')),
    hostname text NOT NULL,
    port integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    default_mode text NOT NULL DEFAULT 'auto' CHECK (default_mode IN ('auto', 'manual', 'off')),
    default_ttl_seconds integer NOT NULL DEFAULT 60 CHECK (default_ttl_seconds > 0),
    origin_tls text NOT NULL DEFAULT 'prefer' CHECK (origin_tls IN ('disable', 'prefer', 'require')),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
  )`,
  `CREATE INDEX caches_workspace_idx ON caches (workspace_id, id)`,
  `CREATE TABLE cache_rules (
    id text PRIMARY KEY,
    cache_id text NOT NULL REFERENCES caches (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('table', 'template', 'query')),
    key text NOT NULL,
    sql text,
    mode text NOT NULL CHECK (mode IN ('auto', 'manual', 'off')),
    ttl_seconds integer CHECK (ttl_seconds > 0),
    transaction_policy text NOT NULL DEFAULT 'never' CHECK (transaction_policy IN ('never', 'untilWrite')),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (cache_id, kind, key)
  )`,
  `CREATE TABLE api_keys (
    id text PRIMARY KEY,
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name text NOT NULL,
    prefix text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    scopes text[] NOT NULL,
    cache_ids text[],
    created_by_client_id text,
    expires_at timestamptz,
    last_used_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
  )`,
  `CREATE INDEX api_keys_workspace_user_idx ON api_keys (workspace_id, user_id, id)`,
  `CREATE TABLE service_tokens (
    id text PRIMARY KEY,
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    created_by text REFERENCES users (id) ON DELETE SET NULL,
    expires_at timestamptz,
    last_used_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
  )`,
  `CREATE INDEX service_tokens_workspace_idx ON service_tokens (workspace_id, id)`,
  `CREATE TABLE service_token_accesses (
    token_id text NOT NULL REFERENCES service_tokens (id) ON DELETE CASCADE,
    scope text NOT NULL,
    cache_id text REFERENCES caches (id) ON DELETE CASCADE
  )`,
  `CREATE INDEX service_token_accesses_token_idx ON service_token_accesses (token_id)`,
  // Same Idempotency-Key + same body → the stored response; in flight while status is null.
  `CREATE TABLE idempotency_keys (
    credential text NOT NULL,
    key text NOT NULL,
    request_hash text NOT NULL,
    status integer,
    headers jsonb,
    body text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (credential, key)
  )`,
];
