// The hosted connect flow: envelope data keys, connections, connect sessions, the per-workspace
// event log and webhook endpoints with their delivery queue.
import type { MigrationStatements } from './index.ts';

export const connect: MigrationStatements = [
  // One active data key per workspace, wrapped (AES-256-GCM) by a key derived from the root secret;
  // retired keys stay until no row is sealed with them.
  `CREATE TABLE data_keys (
    id text PRIMARY KEY,
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    wrapped_key text NOT NULL,
    root_key_id text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
  )`,
  `CREATE UNIQUE INDEX data_keys_active_idx ON data_keys (workspace_id) WHERE active`,
  `CREATE TABLE connections (
    id text PRIMARY KEY,
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type text NOT NULL,
    name text NOT NULL,
    config jsonb NOT NULL,
    secret_fields text[] NOT NULL DEFAULT '{}',
    secrets text NOT NULL,
    key_id text NOT NULL REFERENCES data_keys (id),
    created_by_client_id text,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
  )`,
  `CREATE INDEX connections_workspace_idx ON connections (workspace_id, id)`,
  `CREATE INDEX connections_key_idx ON connections (key_id)`,
  `CREATE TABLE connect_sessions (
    id text PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    client_id text,
    created_by text NOT NULL,
    types text[] NOT NULL,
    name text NOT NULL,
    redirect_url text NOT NULL,
    frame_origins text[] NOT NULL,
    state text,
    theme text NOT NULL DEFAULT 'auto' CHECK (theme IN ('auto', 'light', 'dark')),
    connection_id text REFERENCES connections (id) ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'cancelled')),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    result_connection_id text REFERENCES connections (id) ON DELETE SET NULL,
    code_hash text UNIQUE,
    code_expires_at timestamptz,
    code_used_at timestamptz
  )`,
  `CREATE INDEX connect_sessions_expiry_idx ON connect_sessions (expires_at)`,
  // Appends take the workspace row's lock to number events, so per workspace they commit in
  // sequence order and a reader following the cursor never skips one committed late.
  `ALTER TABLE workspaces ADD COLUMN event_seq bigint NOT NULL DEFAULT 0`,
  `CREATE TABLE workspace_events (
    id text PRIMARY KEY,
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, seq)
  )`,
  `CREATE TABLE webhooks (
    id text PRIMARY KEY,
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    url text NOT NULL,
    description text NOT NULL DEFAULT '',
    events text[],
    secret text NOT NULL,
    key_id text NOT NULL REFERENCES data_keys (id),
    created_at timestamptz NOT NULL DEFAULT now()
  )`,
  `CREATE INDEX webhooks_workspace_idx ON webhooks (workspace_id, id)`,
  `CREATE INDEX webhooks_key_idx ON webhooks (key_id)`,
  `CREATE TABLE webhook_deliveries (
    id text PRIMARY KEY,
    webhook_id text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id text NOT NULL REFERENCES workspace_events (id) ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
  )`,
  `CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'`,
  `CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at)`,
];
