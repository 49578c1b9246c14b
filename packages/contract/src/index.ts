// Public contract of Edgegate: schemas and types shared by the server, the SDK and tests.
export * from './problem.ts';
export * from './workspace.ts';
export * from './account.ts';
export * from './scopes.ts';
export * from './oauth-app.ts';
export * from './api/index.ts';
export * from './connection-string.ts';
export * from './webhook-signature.ts';
