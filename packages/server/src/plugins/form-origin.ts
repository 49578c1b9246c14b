// The Origin check every form of ours passes before its CSRF token is read (console, consent, connect).
import { Problem } from '../problem.ts';

/**
 * A browser sends Origin on every form POST; it must be one of ours. `null` (a sandboxed frame, a
 * `data:` page, a redirect through another site) is refused like any foreign origin: a page whose
 * origin is opaque could still have read a token. Without Origin (a non-browser client, an old
 * browser) the CSRF token alone decides.
 */
export function checkFormOrigin(origin: string | undefined, ours: readonly string[]): void {
  if (origin !== undefined && !ours.includes(origin))
    throw new Problem('csrf.origin_mismatch', 403, 'This form was submitted from another site.');
}
