// The tests `npm run mutate` (StrykerJS) runs against each mutant: the unit tests of the modules
// that decide isolation and freshness (only the credential resolver's needs the machine's
// Postgres), not the end-to-end suites, so a run fits on two cores.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'packages/edge/test/epochs.test.ts',
      'packages/edge/test/result-cache.test.ts',
      'packages/edge/test/cache-rules.test.ts',
      'packages/edge/test/sql-analyze.test.ts',
      'packages/edge/test/sql-shape.test.ts',
      'packages/edge/test/sql-functions.test.ts',
      'packages/edge/test/session-key.test.ts',
      'packages/edge/test/function-effects-analysis.test.ts',
      'packages/server/test/credential-scopes.test.ts',
      'packages/server/test/credential-resolver.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
