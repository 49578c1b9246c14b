// Errors as values the one error handler turns into RFC 9457 problem+json (or an error page).
export interface FieldError {
  path: string;
  message: string;
}

export class Problem extends Error {
  override name = 'Problem';
  readonly code: string;
  readonly status: number;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;
  /** Extra members of the problem body (RFC 9457 §3.2), e.g. the checks of /readyz. */
  readonly extensions: Record<string, unknown> | undefined;

  /** `code` is stable and dotted (`workspace.not_found`); it becomes the problem `type`. */
  constructor(
    code: string,
    status: number,
    detail?: string,
    options: {
      errors?: FieldError[];
      headers?: Record<string, string>;
      extensions?: Record<string, unknown>;
    } = {},
  ) {
    super(detail ?? code);
    this.code = code;
    this.status = status;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.extensions = options.extensions;
  }
}

export const PROBLEM_TYPE_BASE = 'https://edgegate.dev/problems/';
