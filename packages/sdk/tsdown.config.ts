// Builds what partners install: ESM and CommonJS JavaScript for Node >= 20, browsers and edge
// runtimes, with bundled declarations. `@edgegate/contract` is not published, so what the SDK uses
// of it (connection strings, webhook signatures, the API's types) is bundled in; zod stays a
// dependency because the declarations name its types.
import { defineConfig } from 'tsdown';

export default defineConfig({
  entry: { index: 'src/index.ts', 'node/index': 'src/node/index.ts' },
  format: ['esm', 'cjs'],
  platform: 'neutral',
  target: 'node20',
  tsconfig: 'tsconfig.build.json',
  dts: { eager: true },
  clean: true,
  sourcemap: false,
  noExternal: ['@edgegate/contract'],
  external: ['zod', /^node:/],
});
