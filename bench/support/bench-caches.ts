// The cache ids the benchmarks' edge process serves; a module of its own, since importing
// edge-process.ts would start an edge.
export const CACHE_OFF = 'cch_benchoff00000000000000';
export const CACHE_ON = 'cch_benchon000000000000000';
export const MYSQL_CACHE_OFF = 'cch_mysqloff00000000000000';
export const MYSQL_CACHE_ON = 'cch_mysqlon000000000000000';
