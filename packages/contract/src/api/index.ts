// The /v1 API's request and response schemas.
export * from './pagination.ts';
export * from './caches.ts';
export * from './credentials.ts';
export * from './metrics.ts';
export * from './connect.ts';
export * from './sessions.ts';
