// Row types of the control-plane store, as Kysely sees them.
import type { ConnectEndUser } from '@edgegate/contract';
import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type NullableTimestamp = ColumnType<
  Date | null,
  Date | string | null | undefined,
  Date | string | null
>;

export interface UsersTable {
  id: string;
  email: string;
  name: string;
  password_hash: string;
  created_at: CreatedAt;
  /** Set by `edgegate users disable`: no log-in, and no credential of the user works. */
  disabled_at: NullableTimestamp;
}

export interface WorkspacesTable {
  id: string;
  name: string;
  slug: string;
  personal_for: string | null;
  created_at: CreatedAt;
  event_seq: Generated<string>;
}

export interface MembershipsTable {
  workspace_id: string;
  user_id: string;
  role: 'admin' | 'member';
  created_at: CreatedAt;
}

export interface SessionsTable {
  id_hash: string;
  user_id: string;
  created_at: CreatedAt;
  expires_at: Timestamp;
  last_seen_at: CreatedAt | Timestamp;
  ip: string | null;
  user_agent: string | null;
}

export interface InvitationsTable {
  id: string;
  workspace_id: string;
  token_hash: string;
  role: 'admin' | 'member';
  created_by: string | null;
  created_at: CreatedAt;
  expires_at: Timestamp;
  accepted_at: NullableTimestamp;
  accepted_by: string | null;
  revoked_at: NullableTimestamp;
}

export interface AuditEventsTable {
  id: Generated<string>;
  workspace_id: string | null;
  actor_user_id: string | null;
  action: string;
  target: string | null;
  data: ColumnType<Record<string, unknown>, string | undefined, string>;
  created_at: CreatedAt;
}

export interface OAuthAppsTable {
  id: string;
  client_id: string;
  owner_user_id: string | null;
  owner_workspace_id: string | null;
  name: string;
  description: string;
  logo_url: string | null;
  homepage_url: string | null;
  redirect_uris: string[];
  scopes: string[];
  client_type: 'confidential' | 'public';
  created_by: string | null;
  created_at: CreatedAt;
  updated_at: CreatedAt | Timestamp;
}

export interface OAuthAppSecretsTable {
  id: string;
  app_id: string;
  secret_hash: string;
  created_at: CreatedAt;
  expires_at: NullableTimestamp;
}

export interface OAuthGrantsTable {
  id: string;
  app_id: string;
  user_id: string;
  workspace_id: string | null;
  scopes: string[];
  /** The caches the consent limited the grant to; null for all of the workspace. */
  cache_ids: ColumnType<string[] | null, string[] | null | undefined, string[] | null>;
  payload: ColumnType<Record<string, unknown>, string, string>;
  created_at: CreatedAt;
  expires_at: Timestamp;
  last_used_at: NullableTimestamp;
}

export interface OAuthTokensTable {
  id_hash: string;
  kind: string;
  grant_id: string | null;
  payload: ColumnType<Record<string, unknown>, string, string>;
  expires_at: Timestamp;
  consumed_at: NullableTimestamp;
}

export interface OAuthPayloadsTable {
  model: string;
  id: string;
  payload: ColumnType<Record<string, unknown>, string, string>;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  expires_at: NullableTimestamp;
  consumed_at: NullableTimestamp;
}

export interface CachesTable {
  id: string;
  workspace_id: string;
  name: string;
  description: string;
  type: 'postgres' | 'mysql' | 'mariadb' | 'mssql';
  hostname: string;
  port: number;
  default_mode: 'auto' | 'manual' | 'off';
  default_ttl_seconds: number;
  origin_tls: 'disable' | 'prefer' | 'require';
  version: Generated<number>;
  created_at: CreatedAt;
  updated_at: CreatedAt | Timestamp;
  /** The partner app whose token (or minted API key) created the cache, and its name then. */
  created_by_app_id: string | null;
  created_by_app_name: string | null;
  invalidation_mode: ColumnType<'edge' | 'replication', 'edge' | 'replication' | undefined>;
  /** The replication credential: a connection's, or a username and a sealed password. */
  replication_connection_id: ColumnType<string | null, string | null | undefined>;
  replication_username: ColumnType<string | null, string | null | undefined>;
  replication_secret: ColumnType<string | null, string | null | undefined>;
  replication_key_id: ColumnType<string | null, string | null | undefined>;
  replication_database: ColumnType<string | null, string | null | undefined>;
  replication_publication: ColumnType<string | null, string | null | undefined>;
  /** Behind by more than this, the cache is held (serves nothing from memory). */
  replication_max_lag_seconds: ColumnType<number | null, number | null | undefined>;
  /** Edge nodes share its results through Redis (migration 0013). */
  shared_results: ColumnType<boolean, boolean | undefined>;
}

export interface CacheReplicationStatusTable {
  cache_id: string;
  status: 'following' | 'catching_up' | 'down';
  reason: string | null;
  lag_seconds: number | null;
  /** Where a binary-log follower resumes (`file:position`); Postgres keeps it in its slot. */
  position: string | null;
  reported_at: ColumnType<Date, Date | string | undefined, Date | string>;
  /** The edge node that follows the cache now (see `lease_until`); null: none. */
  owner: string | null;
  /** The owner's lease ends then (the store's clock) unless renewed; another node may take over. */
  lease_until: ColumnType<Date, Date | string | undefined, Date | string> | null;
  /** Bytes of the origin's log between its end and what the follower has applied, as last seen. */
  lag_bytes: ColumnType<string | null, number | null | undefined, number | null>;
  /** Postgres: WAL its slot keeps on the origin (`restart_lsn` to the current position). */
  retained_bytes: ColumnType<string | null, number | null | undefined, number | null>;
  /** When a control plane announced the slot past REPLICATION_SLOT_WARN_MB; null: re-armed. */
  slot_warned_at: ColumnType<Date, Date | string | undefined, Date | string> | null;
}

export interface CacheRulesTable {
  id: string;
  cache_id: string;
  kind: 'table' | 'template' | 'query';
  key: string;
  sql: string | null;
  mode: 'auto' | 'manual' | 'off';
  ttl_seconds: number | null;
  transaction_policy: 'never' | 'untilWrite';
  version: Generated<number>;
  created_at: CreatedAt;
  updated_at: CreatedAt | Timestamp;
}

export interface CacheMetricSamplesTable {
  id: Generated<string>;
  cache_id: string;
  at: CreatedAt;
  queries: number;
  hits: number;
  misses: number;
  uncacheable: number;
  bytes_served: ColumnType<string, number, never>;
  hit_latency: number[];
  miss_latency: number[];
  templates: ColumnType<TemplateSample[], string, never>;
}

export interface TemplateSample {
  fingerprint: string;
  normalized: string;
  count: number;
}

export interface ApiKeysTable {
  id: string;
  workspace_id: string;
  user_id: string;
  name: string;
  prefix: string;
  token_hash: string;
  scopes: string[];
  cache_ids: string[] | null;
  created_by_client_id: string | null;
  expires_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
  created_at: CreatedAt;
}

export interface ServiceTokensTable {
  id: string;
  workspace_id: string;
  name: string;
  token_hash: string;
  created_by: string | null;
  expires_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
  created_at: CreatedAt;
}

export interface ServiceTokenAccessesTable {
  token_id: string;
  scope: string;
  cache_id: string | null;
}

export interface IdempotencyKeysTable {
  credential: string;
  key: string;
  request_hash: string;
  status: number | null;
  headers: ColumnType<Record<string, string> | null, string | null, string | null>;
  body: string | null;
  /** When the key was (re)claimed: the start of its in-progress lease. */
  created_at: Generated<Date>;
  expires_at: Timestamp;
}

export interface DataKeysTable {
  id: string;
  workspace_id: string;
  wrapped_key: string;
  root_key_id: string;
  active: Generated<boolean>;
  created_at: CreatedAt;
  retired_at: NullableTimestamp;
}

export interface ConnectionsTable {
  id: string;
  workspace_id: string;
  type: string;
  name: string;
  config: ColumnType<Record<string, unknown>, string, string>;
  secret_fields: string[];
  secrets: string;
  key_id: string;
  created_by_client_id: string | null;
  /** Whether the origin checked the password at the last test; null before it was recorded. */
  password_verified: boolean | null;
  end_user: ColumnType<ConnectEndUser | null, string | null, string | null>;
  metadata: ColumnType<Record<string, unknown> | null, string | null, string | null>;
  version: Generated<number>;
  created_at: CreatedAt;
  updated_at: CreatedAt | Timestamp;
}

export interface ConnectSessionsTable {
  id: string;
  token_hash: string;
  workspace_id: string;
  client_id: string | null;
  created_by: string;
  types: string[];
  name: string;
  redirect_url: string;
  frame_origins: string[];
  state: string | null;
  theme: Generated<'auto' | 'light' | 'dark'>;
  connection_id: string | null;
  status: Generated<'pending' | 'completed' | 'cancelled'>;
  expires_at: Timestamp;
  created_at: CreatedAt;
  finished_at: NullableTimestamp;
  result_connection_id: string | null;
  code_hash: string | null;
  code_expires_at: NullableTimestamp;
  code_used_at: NullableTimestamp;
  end_user: ColumnType<ConnectEndUser | null, string | null, string | null>;
  metadata: ColumnType<Record<string, unknown> | null, string | null, string | null>;
}

export interface WorkspaceEventsTable {
  id: string;
  workspace_id: string;
  /** bigint: pg returns it as a string. */
  seq: ColumnType<string, string | number, never>;
  type: string;
  data: ColumnType<Record<string, unknown>, string, never>;
  created_at: CreatedAt;
}

export interface WebhooksTable {
  id: string;
  workspace_id: string;
  url: string;
  description: Generated<string>;
  events: string[] | null;
  secret: string;
  key_id: string;
  /** The credential that registered it (at most one is set); none for the console's. */
  grant_id: string | null;
  api_key_id: string | null;
  service_token_id: string | null;
  created_at: CreatedAt;
}

export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  event_id: string;
  status: Generated<'pending' | 'delivered' | 'failed'>;
  attempts: Generated<number>;
  next_attempt_at: CreatedAt | Timestamp;
  lease_until: NullableTimestamp;
  last_status: number | null;
  last_error: string | null;
  created_at: CreatedAt;
  finished_at: NullableTimestamp;
}

export interface Database {
  users: UsersTable;
  workspaces: WorkspacesTable;
  memberships: MembershipsTable;
  sessions: SessionsTable;
  invitations: InvitationsTable;
  audit_events: AuditEventsTable;
  oauth_apps: OAuthAppsTable;
  oauth_app_secrets: OAuthAppSecretsTable;
  oauth_grants: OAuthGrantsTable;
  oauth_tokens: OAuthTokensTable;
  oauth_payloads: OAuthPayloadsTable;
  caches: CachesTable;
  cache_replication_status: CacheReplicationStatusTable;
  cache_rules: CacheRulesTable;
  cache_metric_samples: CacheMetricSamplesTable;
  api_keys: ApiKeysTable;
  service_tokens: ServiceTokensTable;
  service_token_accesses: ServiceTokenAccessesTable;
  idempotency_keys: IdempotencyKeysTable;
  data_keys: DataKeysTable;
  connections: ConnectionsTable;
  connect_sessions: ConnectSessionsTable;
  workspace_events: WorkspaceEventsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
}

export type User = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type WorkspaceRow = Selectable<WorkspacesTable>;
export type Invitation = Selectable<InvitationsTable>;
export type OAuthApp = Selectable<OAuthAppsTable>;
export type CacheRow = Selectable<CachesTable>;
export type CacheRuleRow = Selectable<CacheRulesTable>;
export type ConnectionRow = Selectable<ConnectionsTable>;
export type ConnectSessionRow = Selectable<ConnectSessionsTable>;
export type WorkspaceEventRow = Selectable<WorkspaceEventsTable>;
export type WebhookRow = Selectable<WebhooksTable>;
export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>;
