// Which engine route a request is for, before the engine's router has said so: our middleware
// runs ahead of it and must match paths the way it does.
import type { KoaContextWithOIDC } from 'oidc-provider';

/** Like the engine's router: case-insensitive, one trailing slash allowed. */
export function isEnginePath(ctx: Pick<KoaContextWithOIDC, 'path'>, route: string): boolean {
  const path = ctx.path.length > 1 ? ctx.path.replace(/\/$/, '') : ctx.path;
  return path.toUpperCase() === route.toUpperCase();
}
