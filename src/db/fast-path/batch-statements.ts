import { CompiledQuery, type Compilable } from 'kysely';

/**
 * The statements of a batch (see batched-transaction.ts), by name: the order they are written in is the
 * order they are sent in, and each result comes back under its statement's name.
 */

/** What one statement of a batch did: affected rows for writes, rows for reads. */
export interface StatementResult {
  affectedRows: number;
  rows: unknown[];
}

/** A statement whose affected-row count must be exactly `rows`, or the batch stops there (UnexpectedRowCount). */
interface Expectation {
  statement: Compilable | CompiledQuery;
  rows: number;
}

export type Statement = Compilable | CompiledQuery | Expectation;

/**
 * A batch's statements by name, sent in the order the names are written; each result comes back under its
 * statement's name, so adding a statement cannot shift the others. A list stands for several statements (one
 * result each, in order; none when empty); `undefined` for none (its result is `undefined`).
 */
export type Statements = Readonly<Record<string, Statement | readonly Statement[] | undefined>>;

type ResultOf<V> = V extends readonly unknown[] ? StatementResult[] : V extends undefined ? undefined : StatementResult;
/** The results of `S`, under the names of its statements. */
export type Results<S extends Statements> = { -readonly [K in keyof S]: ResultOf<S[K]> };

/** `statement` must affect exactly `rows` rows; otherwise nothing after it in the batch runs (COMMIT included). */
export function expectAffectedRows(statement: Compilable | CompiledQuery, rows: number): Statement {
  return { statement, rows };
}

export interface Planned {
  query: CompiledQuery;
  /** The name its result goes under; begin, commit, guards and statements after a rollback have none. */
  name: string | null;
  /** Its result joins a list under that name (one of a list of statements). */
  list: boolean;
  expect?: number;
}

const compile = (q: Compilable | CompiledQuery): CompiledQuery => ('compile' in q ? q.compile() : q);
export const planOne = (s: Statement, name: string | null, list: boolean): Planned =>
  'statement' in s ? { query: compile(s.statement), name, list, expect: s.rows } : { query: compile(s), name, list };
// Never mutated, so built once.
export const BEGIN: Planned = { query: CompiledQuery.raw('begin'), name: null, list: false };
export const COMMIT: Planned = { query: CompiledQuery.raw('commit'), name: null, list: false };
export const ROLLBACK: Planned = { query: CompiledQuery.raw('rollback'), name: null, list: false };
/** Applies to the next transaction of the session only, so it rides just before that transaction's BEGIN. */
export const SET_READ_COMMITTED: Planned = { query: CompiledQuery.raw('set transaction isolation level read committed'), name: null, list: false };
/** Integer-like keys would be enumerated before the others, out of the order they were written in. */
const INDEX_LIKE = /^\d+$/;

/** The statements of `a`, then those of `b`; a name in both is refused (one result would hide the other). */
export function joinStatements<A extends Statements, B extends Statements>(a: A, b: B): A & B {
  for (const name of Object.keys(b)) if (Object.hasOwn(a, name)) throw new Error(`statement name "${name}" is used twice`);
  return { ...a, ...b };
}

/** The planned statements of `statements`, in order; `out` gets an empty list for each list of statements. */
export function plan(statements: Statements, out: Record<string, unknown>): Planned[] {
  const planned: Planned[] = [];
  for (const name of Object.keys(statements)) {
    if (INDEX_LIKE.test(name)) throw new Error(`statement name "${name}": a number would not keep its place in the batch`);
    const s = statements[name];
    if (s === undefined) continue;
    if (Array.isArray(s)) {
      out[name] = [];
      for (const one of s as readonly Statement[]) planned.push(planOne(one, name, true));
    } else {
      planned.push(planOne(s as Statement, name, false));
    }
  }
  return planned;
}

/** Files a statement's result under its name. */
export function place(out: Record<string, unknown>, p: Planned, result: StatementResult): void {
  if (p.name === null) return;
  if (p.list) (out[p.name] as StatementResult[]).push(result);
  else out[p.name] = result;
}
