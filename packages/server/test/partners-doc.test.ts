// docs/partners.md shows partners only code that runs: each TypeScript snippet, marked
// `<!-- snippet: NAME -->`, must appear in the example or test file named for it below, which the
// test suite runs against a real Edgegate; each complete file, marked `<!-- file: NAME -->`, is
// taken from the page and run by sdk-package.test.ts. No block of it or of docs/connect.md may
// lean on test code (assertions, stubs, test helpers) that a partner copying it would not have.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../../..');
const GUIDE = 'docs/partners.md';

const SDK_TEST = 'packages/server/test/sdk.test.ts';
/** Takes each `<!-- file: NAME -->` block from the guide with `guideFile('NAME')` and runs it. */
const FILE_RUNNER = 'packages/server/test/sdk-package.test.ts';
const CLI = 'examples/partner-cli/src';
const PARTNER_APP = 'examples/partner-app/src/app.ts';

/** Where each snippet of the guide is taken from, relative to the repository root. */
const SOURCES: Record<string, string> = {
  'partner-app-connect': PARTNER_APP,
  'partner-app-callback': PARTNER_APP,
  'credentials-file-write': `${CLI}/credentials-file.ts`,
  'client-with-rotation': `${CLI}/session.ts`,
  'partner-app-disconnect': PARTNER_APP,
  'partner-app-with-edgegate': PARTNER_APP,
  'create-cache': SDK_TEST,
  'list-caches': `${CLI}/commands/caches-list.ts`,
  'cache-metrics': SDK_TEST,
  'connection-string': SDK_TEST,
  'explain-errors': `${CLI}/cli.ts`,
  'loopback-login': `${CLI}/commands/login.ts`,
  'device-login': `${CLI}/commands/login.ts`,
  'logout-revoke': `${CLI}/commands/logout.ts`,
};

interface Block {
  language: string;
  code: string;
  /** The `<!-- snippet: NAME -->` just above the block, if any. */
  name: string | undefined;
  /** The `<!-- file: NAME -->` just above the block, if any. */
  file: string | undefined;
  line: number;
}

/**
 * What only a test has: vitest's assertions, the SDK test's stub servers and browser stand-ins,
 * and non-null assertions on values a test knows are there.
 */
const TEST_ONLY: [RegExp, string][] = [
  [/\bexpect\s*\(/, 'expect()'],
  [/\.(toBe|toEqual|toMatchObject|rejects|resolves)\b/, 'a vitest matcher'],
  [/\b(stub|receiver|delivery)\b[!.]/, 'a stub server of the tests'],
  [/\bconsent\s*\(/, "the tests' consent() stand-in for a browser"],
  [/\b(vitest|vi\.|beforeAll|afterAll|it\(|describe\()/, 'the test framework'],
  [/\w!\.|\w!\)|\w!,/, 'a non-null assertion (!)'],
];

/** Every fenced code block of a Markdown text, with the snippet marker that precedes it. */
function blocksOf(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    let above = start - 1;
    while (above >= 0 && lines[above]!.trim() === '') above--;
    const marker = /^<!-- snippet: ([\w-]+) -->$/.exec(lines[above]?.trim() ?? '');
    const file = /^<!-- file: ([\w.-]+) -->$/.exec(lines[above]?.trim() ?? '');
    blocks.push({
      language: open[1]!,
      code: body.join('\n'),
      name: marker?.[1],
      file: file?.[1],
      line: start + 1,
    });
  }
  return blocks;
}

/**
 * Code compared for its tokens: whitespace dropped (indentation and line breaks differ between a
 * nested source and a top-level snippet), and so are the trailing commas Prettier adds or removes
 * when it rewraps a call at another width.
 */
function normalised(code: string): string {
  return code.replace(/\s+/g, '').replace(/,([)\]}])/g, '$1');
}

const guide = readFileSync(resolve(ROOT, GUIDE), 'utf8');
const blocks = blocksOf(guide);
const typescript = blocks.filter((block) => ['ts', 'typescript'].includes(block.language));

describe('the partner guide (docs/partners.md)', () => {
  it('marks every TypeScript snippet with a unique name that names its source', () => {
    expect(typescript.length).toBeGreaterThanOrEqual(12);
    const unmarked = typescript.filter((block) => block.name === undefined);
    expect(unmarked.map((block) => `line ${block.line}`)).toEqual([]);
    const names = typescript.map((block) => block.name!);
    expect(new Set(names).size).toBe(names.length);
    expect(names.filter((name) => !(name in SOURCES))).toEqual([]);
    // A marker on a block of another language would hide it from these checks.
    const markedElsewhere = blocks.filter((b) => b.name !== undefined && !typescript.includes(b));
    expect(markedElsewhere.map((block) => `line ${block.line}`)).toEqual([]);
  });

  it('maps no snippet that the guide no longer has', () => {
    const names = new Set(typescript.map((block) => block.name));
    expect(Object.keys(SOURCES).filter((name) => !names.has(name))).toEqual([]);
  });

  it.each(typescript.map((block) => [block.name ?? `line ${block.line}`, block] as const))(
    'takes the snippet "%s" from code the tests run',
    (name, block) => {
      const source = SOURCES[name];
      expect(source, `no source named for snippet ${name}`).toBeDefined();
      const text = readFileSync(resolve(ROOT, source!), 'utf8');
      const found = normalised(text).includes(normalised(block.code));
      expect(found, `${GUIDE} line ${block.line}: snippet ${name} is not in ${source}`).toBe(true);
    },
  );

  it('runs every complete file it shows, as it is on the page', () => {
    const files = blocks.filter((block) => block.file !== undefined);
    expect(files.map((block) => block.file).sort()).toEqual([
      'connect.mjs',
      'partner.mjs',
      'register-webhook.mjs',
      'webhooks.mjs',
    ]);
    expect(files.filter((block) => block.language !== 'js').map((b) => b.file)).toEqual([]);
    const runner = readFileSync(resolve(ROOT, FILE_RUNNER), 'utf8');
    const notRun = files.filter((block) => !runner.includes(`guideFile('${block.file}')`));
    expect(notRun.map((block) => block.file)).toEqual([]);
  });

  it('links only to files that exist', () => {
    const links = [...guide.matchAll(/\]\((\.\.\/[^)#\s]+|[\w-]+\.md)(?:#[^)]*)?\)/g)].map(
      (match) => match[1]!,
    );
    expect(links.length).toBeGreaterThan(5);
    const missing = links.filter((link) => {
      try {
        readFileSync(resolve(ROOT, 'docs', link));
        return false;
      } catch {
        return true;
      }
    });
    expect(missing).toEqual([]);
  });
});

describe.each(['docs/partners.md', 'docs/connect.md'])('the code blocks of %s', (page) => {
  const all = blocksOf(readFileSync(resolve(ROOT, page), 'utf8'));

  it('has code blocks to check', () => {
    expect(all.length).toBeGreaterThan(3);
  });

  it.each(all.map((block) => [`line ${block.line}`, block] as const))(
    'uses nothing a partner lacks at %s',
    (_, block) => {
      const found = TEST_ONLY.filter(([pattern]) => pattern.test(block.code)).map(
        ([, what]) => what,
      );
      expect(found, `${page} line ${block.line} uses test code`).toEqual([]);
    },
  );
});
