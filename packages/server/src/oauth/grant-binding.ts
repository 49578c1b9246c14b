// Carries the consent page's chosen workspace (and its transaction) through the engine's
// `grant.save()` to the adapter, which writes it in the grant's first insert: no grant is ever
// visible without its workspace.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Db } from '../db/store.ts';

export interface GrantBinding {
  workspaceId: string;
  /** Caches of that workspace the grant is limited to; null or absent for all. */
  cacheIds?: string[] | null;
  /** The transaction the grant is saved in. */
  db: Db;
  /** Set by the adapter: whether this save created the grant (false: it already existed). */
  created?: boolean;
}

const bindings = new AsyncLocalStorage<GrantBinding>();

/** Saves a new grant bound to `workspaceId`; false if a grant with its id already existed. */
export async function saveBoundGrant(
  grant: { save(): Promise<string> },
  binding: { workspaceId: string; db: Db; cacheIds?: string[] | null },
): Promise<boolean> {
  const state: GrantBinding = { ...binding };
  await bindings.run(state, () => grant.save());
  return state.created === true;
}

export function pendingGrantBinding(): GrantBinding | undefined {
  return bindings.getStore();
}
