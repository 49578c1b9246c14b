// A webhook lives as long as the credential that registered it: revoking an app's grant, deleting
// an API key or a service token removes its endpoints and their queued deliveries (ON DELETE
// CASCADE). Endpoints registered before this migration, or from the console, have no owner and
// live with the workspace.
import type { MigrationStatements } from './index.ts';

export const webhookOwners: MigrationStatements = [
  `ALTER TABLE webhooks ADD COLUMN grant_id text REFERENCES oauth_grants (id) ON DELETE CASCADE`,
  `ALTER TABLE webhooks ADD COLUMN api_key_id text REFERENCES api_keys (id) ON DELETE CASCADE`,
  `ALTER TABLE webhooks ADD COLUMN service_token_id text REFERENCES service_tokens (id) ON DELETE CASCADE`,
  `CREATE INDEX webhooks_grant_idx ON webhooks (grant_id) WHERE grant_id IS NOT NULL`,
  `CREATE INDEX webhooks_api_key_idx ON webhooks (api_key_id) WHERE api_key_id IS NOT NULL`,
  `CREATE INDEX webhooks_service_token_idx ON webhooks (service_token_id) WHERE service_token_id IS NOT NULL`,
];
