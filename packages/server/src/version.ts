// Edgegate's version, as released: the server package's, which the CLI, /healthz and metrics
// (edgegate_build_info) report.
import { readFileSync } from 'node:fs';

const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export const VERSION: string = manifest.version;
/** The same, under the name the metrics use. */
export const EDGEGATE_VERSION: string = VERSION;
