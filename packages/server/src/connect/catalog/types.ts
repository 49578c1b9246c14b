// The shapes every connection type in the hosted connect flow's catalog shares.
import type { CacheType, ConnectionTypeId } from '@edgegate/contract';
import type { z } from 'zod';

/** 'postgresql' | 'mysql' | 'mariadb' | 'redis' | 'mssql', as the public API names them. */
export type { ConnectionTypeId };

/** UI hints a field carries in its zod `.meta()`; the catalog moves them into `x-edgegate`. */
export interface FieldHints {
  title: string;
  description?: string;
  placeholder?: string;
  secret?: boolean;
  order: number;
  example?: string | number | boolean;
  widget?: 'text' | 'password' | 'number' | 'checkbox' | 'select';
}

export interface ConnectionTypeDef<C = Record<string, unknown>> {
  id: ConnectionTypeId;
  title: string;
  description: string;
  /** Cache type of the same database, or null when no cache can front it (redis). */
  cacheType: CacheType | null;
  /** A strict object; every field carries `.meta()` hints (title, description, examples, placeholder, secret, order, widget). */
  schema: z.ZodType<C>;
  secretFields: readonly string[];
  /** The host and port the SSRF guard must check before `test` may connect. */
  origin(config: C): { host: string; port: number };
  test(config: C, ctx: TestContext): Promise<TestOutcome>;
}

export interface TestContext {
  /** Overall budget: the test closes its sockets and answers `timeout` once it is spent. */
  timeoutMs: number;
  /** The guard-checked IP address to dial instead of the config's host (DNS-rebinding safe); TLS still uses the host name for SNI and verification. */
  address: string;
  signal?: AbortSignal;
}

export type TestFailureCode =
  | 'auth_failed'
  | 'host_not_found'
  | 'connection_refused'
  | 'timeout'
  | 'tls_required'
  | 'tls_unavailable'
  | 'tls_failed'
  | 'database_missing'
  | 'protocol_error'
  | 'unknown';

export type TestOutcome =
  /**
   * `note` says what the test could not check or had to give up (no login, no TLS).
   * `passwordVerified` is false when the login did not depend on the password: the server never
   * asked for one (trust auth), the test could not log in, or no password was given.
   */
  | { ok: true; serverVersion?: string; note?: string; passwordVerified: boolean }
  | { ok: false; code: TestFailureCode; field?: string; message: string };

export type TestFailure = Extract<TestOutcome, { ok: false }>;
