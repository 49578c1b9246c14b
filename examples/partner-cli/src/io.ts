// Where a command writes: results to `out`, progress and errors to `err` (one line per call).
export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}
