// API scopes (SPEC §3) and how the consent page words them for people.
import { z } from 'zod';

export const API_SCOPES = [
  'caches:read',
  'caches:write',
  'cacheRules:read',
  'cacheRules:write',
  'connections:read',
  'connections:write',
  'metrics:read',
] as const;

export const apiScopeSchema = z.enum(API_SCOPES);
export type ApiScope = z.infer<typeof apiScopeSchema>;

/** Scopes an OAuth app may ask for: the API scopes and `offline_access` (refresh tokens). */
export const appScopeSchema = z.enum([...API_SCOPES, 'offline_access']);
export type AppScope = z.infer<typeof appScopeSchema>;

export const SCOPE_DESCRIPTIONS: Record<AppScope, string> = {
  'caches:read': 'See your caches and their settings',
  'caches:write': 'Create, change and delete caches',
  'cacheRules:read': 'See the caching rules of your caches',
  'cacheRules:write': 'Create, change and delete caching rules',
  'connections:read': 'See your saved database connections (never their secrets)',
  'connections:write': 'Add, change and delete database connections',
  'metrics:read': 'See cache metrics: hits, misses and latency',
  offline_access: 'Stay connected when you are not using it (refresh tokens)',
};
