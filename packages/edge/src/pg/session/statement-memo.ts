// Analyses of SQL texts, remembered by shape (texts differing only in constants share one), so a
// read is parsed by libpg-query once per template rather than once per distinct text.
import { normalizeSync } from 'libpg-query';
import { analyzeSql, type Analysis } from '../sql/analyze.ts';
import { sqlShape } from '../sql/shape.ts';

const MAX_SHAPES = 10_000;

export class StatementMemo {
  readonly #byShape = new Map<string, Analysis>();

  /**
   * The analysis of `sql`. `standardStrings` is false when the session has turned
   * standard_conforming_strings off: backslashes then escape quotes and shapes are not safe.
   */
  analyze(sql: string, standardStrings: boolean): Analysis {
    const shape = standardStrings ? sqlShape(sql) : null;
    if (shape === null) return analyzeSql(sql);
    const known = this.#byShape.get(shape);
    if (known !== undefined) return known;
    const analysis = analyzeSql(sql);
    // A text Postgres refuses says nothing about valid texts of the same shape.
    if (analysis.reason === 'the text does not parse') return analysis;
    if (this.#byShape.size >= MAX_SHAPES) {
      // Drop the oldest shape; the Map keeps insertion order.
      this.#byShape.delete(this.#byShape.keys().next().value as string);
    }
    this.#byShape.set(shape, analysis);
    return analysis;
  }
}

/** The text of a template with its constants replaced by $n; never throws. */
export function normalizeTemplate(sql: string): string {
  try {
    return normalizeSync(sql).slice(0, 500);
  } catch {
    return '(unparsable)';
  }
}
