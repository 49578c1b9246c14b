// The /v1 API: every route behind bearer authentication, errors as problem+json.
import type { FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Db } from '../../db/store.ts';
import { requireBearer } from '../../plugins/bearer-auth.ts';
import { registerGetWorkspace } from './workspace/get-workspace.ts';

export async function registerV1Routes(app: FastifyInstance, db: Db) {
  await app.register(
    async (v1) => {
      v1.setValidatorCompiler(validatorCompiler);
      v1.setSerializerCompiler(serializerCompiler);
      requireBearer(v1, db);
      registerGetWorkspace(v1);
    },
    { prefix: '/v1' },
  );
}
