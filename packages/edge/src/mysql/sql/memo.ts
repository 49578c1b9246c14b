// MySQL analyses remembered by template (texts differing only in constants share one), so a read is
// parsed by the grammar once per template, not once per text: the MySQL counterpart of
// pg/session/statement-memo.ts.
import { analyzeMysql, TOO_LONG_TO_PARSE, type MysqlAnalysis } from './analyze.ts';
import { templateOf, type LexOptions } from './template.ts';

const MAX_TEMPLATES = 10_000;

export class MysqlStatementMemo {
  readonly #byTemplate = new Map<string, MysqlAnalysis>();

  analyze(sql: string, options: LexOptions): MysqlAnalysis {
    const { template } = templateOf(sql, options);
    const memoKey = `${options.noBackslashEscapes === true ? 'b' : '-'}${options.ansiQuotes === true ? 'a' : '-'}${template}`;
    const known = this.#byTemplate.get(memoKey);
    if (known !== undefined) return known;
    const analysis = analyzeMysql(sql, options);
    // A text the grammar refuses says nothing about valid texts of the same template; one too long
    // to parse would only hold memory.
    if (analysis.reason === 'the text does not parse' || analysis.reason === TOO_LONG_TO_PARSE) {
      return analysis;
    }
    if (this.#byTemplate.size >= MAX_TEMPLATES) {
      this.#byTemplate.delete(this.#byTemplate.keys().next().value as string);
    }
    this.#byTemplate.set(memoKey, analysis);
    return analysis;
  }
}
