#!/usr/bin/env node
// Entry point of the `edgegate` command; the CLI itself is TypeScript run by Node 24 directly.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(
    `edgegate needs Node.js 24 or newer (this is ${process.version}). ` +
      'Run it through npm (`npx edgegate …` or `npm start`), which uses the Node 24 pinned in the repo.',
  );
  process.exit(1);
}
await import('../src/main.ts');
