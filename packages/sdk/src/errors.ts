// The errors the SDK throws: the API's problem+json, the authorization server's RFC 6749 errors,
// and an authorization that is gone for good (the user must connect again).
import type { ProblemBody } from '@edgegate/contract';

/** An error answer of the `/v1` API, carrying its RFC 9457 problem body. */
export class EdgegateApiError extends Error {
  override readonly name = 'EdgegateApiError';
  /** Stable URI naming the kind of error, e.g. `https://edgegate.dev/problems/validation_failed`. */
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string | undefined;
  readonly instance: string | undefined;
  /** Field-level validation errors (422), empty otherwise. */
  readonly errors: { path: string; message: string }[];
  readonly problem: ProblemBody;
  readonly headers: Headers;

  constructor(problem: ProblemBody, headers: Headers) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.type = problem.type;
    this.title = problem.title;
    this.status = problem.status;
    this.detail = problem.detail;
    this.instance = problem.instance;
    this.errors = problem.errors ?? [];
    this.problem = problem;
    this.headers = headers;
  }
}

/**
 * An OAuth error: one the authorization server answered (`invalid_grant`, `access_denied`,
 * `authorization_pending`…, with the HTTP status) or a callback that fails the client's own
 * checks (`state_mismatch`, `issuer_mismatch`, `missing_code`).
 */
export class OAuthError extends Error {
  override readonly name = 'OAuthError';
  readonly error: string;
  readonly description: string | undefined;
  /** The token endpoint's HTTP status; undefined for errors found in a callback. */
  readonly status: number | undefined;

  constructor(error: string, description?: string, status?: number) {
    super(description ? `${error}: ${description}` : error);
    this.error = error;
    this.description = description;
    this.status = status;
  }
}

/**
 * The OAuth authorization no longer works (revoked, expired, the user left the workspace, the app
 * was deleted) and refreshing cannot fix it: ask the user to connect again.
 */
export class EdgegateAuthError extends Error {
  override readonly name = 'EdgegateAuthError';
}
