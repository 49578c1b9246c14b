// Cache rules: the key a rule matches is derived from what the user sends (a table name, SQL text
// or a fingerprint, the exact text of a query) and the cache's type; every call checks the cache.
import {
  ruleCreateSchema,
  ruleUpdateSchema,
  type CacheType,
  type Rule,
  type RuleCreate,
  type RuleUpdate,
} from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import type { CacheRuleRow } from '../db/schema.ts';
import {
  deleteRule as deleteRuleRow,
  findRuleByKey,
  findRuleInCache,
  insertRule,
  listRulesOfCache,
  updateRule as updateRuleRow,
} from '../db/queries/rules.ts';
import { notifyCacheChanged } from '../db/queries/cache-events.ts';
import { insertAuditEvent } from '../db/queries/audit-events.ts';
import { Problem } from '../problem.ts';
import type { Principal } from '../plugins/credential-auth.ts';
import { getCache } from './caches.ts';
import { newId } from './crypto.ts';
import { fingerprintPostgres, loadSqlParser, queryHash } from './sql-fingerprint.ts';
import { isUniqueViolation, parseInput } from './validation.ts';

const FINGERPRINT = /^[0-9a-f]{16}$/i;
// Postgres's rule for unquoted identifiers; MySQL and SQL Server accept at least these.
const UNQUOTED_IDENTIFIER = /^[\p{L}_][\p{L}\p{N}_$]*$/u;
const MAX_IDENTIFIER_LENGTH = 128;

export function toRule(row: CacheRuleRow): Rule {
  return {
    id: row.id,
    cacheId: row.cache_id,
    kind: row.kind,
    key: row.key,
    sql: row.sql,
    mode: row.mode,
    ttlSeconds: row.ttl_seconds,
    transactionPolicy: row.transaction_policy,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

function invalidKey(code: string, message: string): Problem {
  return new Problem(code, 422, message, { errors: [{ path: 'key', message }] });
}

/**
 * A table name as `name` or `schema.name`, in one canonical spelling so that equal names give one
 * rule: unquoted parts are lower-cased (ASCII only, as Postgres folds them), and a part keeps its
 * double quotes only when it needs them (`"Orders"`, `"a.b"`), with `""` escaping a quote.
 */
function canonicalTableName(text: string): string {
  const parts: string[] = [];
  let i = 0;
  while (i <= text.length) {
    let name: string;
    if (text[i] === '"') {
      let end = i + 1;
      name = '';
      for (;;) {
        const quote = text.indexOf('"', end);
        if (quote < 0) throw badTableName('a double-quoted name is missing its closing quote');
        name += text.slice(end, quote);
        if (text[quote + 1] !== '"') {
          end = quote + 1;
          break;
        }
        name += '"';
        end = quote + 2;
      }
      if (name === '') throw badTableName('a quoted name may not be empty ("")');
      i = end;
    } else {
      const dot = text.indexOf('.', i);
      const end = dot < 0 ? text.length : dot;
      const raw = text.slice(i, end);
      if (!UNQUOTED_IDENTIFIER.test(raw)) {
        throw badTableName(
          raw === ''
            ? 'a name is empty'
            : `"${raw.slice(0, 80)}" is not a plain name: use letters, digits, underscores and $, ` +
                'starting with a letter or underscore, or put the name in double quotes',
        );
      }
      name = raw.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
      i = end;
    }
    if (name.length > MAX_IDENTIFIER_LENGTH) {
      throw badTableName(`a name is longer than ${MAX_IDENTIFIER_LENGTH} characters`);
    }
    parts.push(UNQUOTED_IDENTIFIER.test(name) && !/[A-Z]/.test(name) ? name : quoted(name));
    if (i === text.length) break;
    if (text[i] !== '.') throw badTableName('a quoted name must be followed by "." or nothing');
    i += 1;
  }
  if (parts.length > 2) throw badTableName('at most a schema and a table, as in schema.table');
  return parts.join('.');
}

function quoted(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function badTableName(reason: string): Problem {
  return invalidKey(
    'rule.invalid_table_name',
    `A table rule's key is a table name, as in orders or public.orders: ${reason}.`,
  );
}

/** What a rule of this kind stores for what the user sent, on a cache of this type. */
async function toRuleKey(
  cacheType: CacheType,
  kind: CacheRuleRow['kind'],
  input: string,
): Promise<{ key: string; sql: string | null }> {
  if (kind === 'table') return { key: canonicalTableName(input.trim()), sql: null };
  if (kind === 'query') {
    // The text stays exact (the edge hashes what the client sends); Postgres can at least say it parses.
    if (cacheType === 'postgres') {
      await loadSqlParser();
      fingerprintPostgres(input);
    }
    return { key: queryHash(input), sql: input };
  }
  const text = input.trim();
  if (FINGERPRINT.test(text)) return { key: text.toLowerCase(), sql: null };
  if (cacheType !== 'postgres') {
    throw invalidKey(
      'rule.template_sql_unsupported',
      `Template rules from SQL text need a Postgres cache until the MySQL edge lands; this is a ${cacheType} cache. ` +
        'Send the template fingerprint (16 hexadecimal digits) as key, or make a query rule for this exact text.',
    );
  }
  await loadSqlParser();
  const { fingerprint, normalized } = fingerprintPostgres(text);
  return { key: fingerprint, sql: normalized };
}

function auditData(row: CacheRuleRow, principal: Principal, extra: Record<string, unknown> = {}) {
  return { cacheId: row.cache_id, kind: row.kind, key: row.key, ...extra, via: principal.kind };
}

export async function createRule(
  db: Db,
  principal: Principal,
  cacheId: string,
  input: RuleCreate,
): Promise<CacheRuleRow> {
  const fields = parseInput(ruleCreateSchema, input);
  const cache = await getCache(db, principal, cacheId, 'cacheRules:write');
  const { key, sql } = await toRuleKey(cache.type, fields.kind, fields.key);
  try {
    return await db.transaction().execute(async (tx) => {
      const row = await insertRule(tx, {
        id: newId('rul'),
        cacheId: cache.id,
        kind: fields.kind,
        key,
        sql,
        mode: fields.mode,
        ttlSeconds: fields.ttlSeconds ?? null,
        transactionPolicy: fields.transactionPolicy,
      });
      await insertAuditEvent(tx, {
        workspaceId: principal.workspaceId,
        actorUserId: principal.userId,
        action: 'rule.created',
        target: row.id,
        data: auditData(row, principal, { mode: row.mode }),
      });
      await notifyCacheChanged(tx, cache.id);
      return row;
    });
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
    const existing = await findRuleByKey(db, cache.id, fields.kind, key);
    const message = existing
      ? `is already the key of rule ${existing.id}`
      : 'was being used by a rule deleted just now; retry';
    throw new Problem(
      'rule.duplicate',
      409,
      existing
        ? `This cache already has a ${fields.kind} rule for this key: ${existing.id}. Change that rule with PATCH instead.`
        : `A ${fields.kind} rule for this key was deleted while this request ran. Retry.`,
      { errors: [{ path: 'key', message }] },
    );
  }
}

/** The rule if its cache is in the principal's workspace and `scope` reaches the cache. */
export async function getRule(
  db: Db,
  principal: Principal,
  cacheId: string,
  id: string,
  scope: string,
): Promise<CacheRuleRow> {
  const cache = await getCache(db, principal, cacheId, scope);
  const row = await findRuleInCache(db, cache.id, id);
  if (!row) throw new Problem('rule.not_found', 404, `No rule ${id} on cache ${cache.id}.`);
  return row;
}

export async function listRules(
  db: Db,
  principal: Principal,
  cacheId: string,
  page: { afterId?: string | undefined; limit: number },
): Promise<CacheRuleRow[]> {
  const cache = await getCache(db, principal, cacheId, 'cacheRules:read');
  return listRulesOfCache(db, cache.id, page);
}

export async function updateRule(
  db: Db,
  principal: Principal,
  cacheId: string,
  id: string,
  input: RuleUpdate,
  checkVersion: (version: number) => void,
): Promise<CacheRuleRow> {
  const patch = parseInput(ruleUpdateSchema, input);
  // As for caches: a concurrent change is retried on the current row unless If-Match pins a version.
  for (let attempt = 1; ; attempt++) {
    const current = await getRule(db, principal, cacheId, id, 'cacheRules:write');
    checkVersion(current.version);
    const mode = patch.mode ?? current.mode;
    const ttlSeconds = patch.ttlSeconds !== undefined ? patch.ttlSeconds : current.ttl_seconds;
    if (mode === 'manual' && ttlSeconds === null) {
      const message = 'is required when mode is manual, and this rule has none';
      throw new Problem('validation_failed', 422, `ttlSeconds: ${message}`, {
        errors: [{ path: 'ttlSeconds', message }],
      });
    }
    const updated = await db.transaction().execute(async (tx) => {
      const row = await updateRuleRow(tx, current.id, current.version, patch);
      if (!row) return undefined;
      await insertAuditEvent(tx, {
        workspaceId: principal.workspaceId,
        actorUserId: principal.userId,
        action: 'rule.updated',
        target: id,
        data: auditData(row, principal, { fields: Object.keys(patch) }),
      });
      await notifyCacheChanged(tx, row.cache_id);
      return row;
    });
    if (updated) return updated;
    if (attempt === 10) {
      throw new Problem(
        'precondition_failed',
        412,
        'The rule kept changing while this request ran. Read it again and retry.',
      );
    }
  }
}

export async function deleteRule(
  db: Db,
  principal: Principal,
  cacheId: string,
  id: string,
): Promise<void> {
  const current = await getRule(db, principal, cacheId, id, 'cacheRules:write');
  await db.transaction().execute(async (tx) => {
    await deleteRuleRow(tx, current.id);
    await insertAuditEvent(tx, {
      workspaceId: principal.workspaceId,
      actorUserId: principal.userId,
      action: 'rule.deleted',
      target: id,
      data: auditData(current, principal),
    });
    await notifyCacheChanged(tx, current.cache_id);
  });
}
