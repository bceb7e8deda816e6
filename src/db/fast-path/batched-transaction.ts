import { CompiledQuery, type DatabaseConnection, type Kysely, type QueryResult } from 'kysely';
import type { Database, Engine } from '../database.ts';
import type { DB } from '../schema.ts';
import {
  BEGIN,
  COMMIT,
  plan,
  planOne,
  place,
  ROLLBACK,
  SET_READ_COMMITTED,
  type Planned,
  type Results,
  type Statement,
  type Statements,
} from './batch-statements.ts';

/** A write that changed a different number of rows than the caller required; nothing after it ran. */
export class UnexpectedRowCount extends Error {
  constructor(expected: number, actual?: number) {
    super(`expected ${expected} affected row(s)${actual === undefined ? '' : `, got ${actual}`}; the transaction was not committed`);
  }
}

/**
 * MySQL has no conditional COMMIT, so a multi-statement batch checks a row count with a statement that fails
 * when the previous one affected another number of rows: a scalar subquery returning two rows (error 1242).
 */
const ROW_COUNT_GUARD = 'select (select 1 union all select 2 from dual where row_count() <> ?) as row_count_guard';
const ER_SUBQUERY_NO_1_ROW = 1242;

/**
 * A transaction whose statements travel in batches: on MySQL a batch is one multi-statement request
 * (one round trip; the server stops at the first failing statement), on SQLite the statements run one
 * by one. `BEGIN` rides with the first batch and `COMMIT` (or `ROLLBACK`) with the last, so a callback's
 * nonce, locked order read, transition, outbox row and payment log commit together in two round trips.
 * Values stay bound parameters (`?`, escaped by the driver); statement text comes only from Kysely.
 */
export class BatchedTransaction {
  private started = false;
  private finished = false;

  constructor(
    /** A Kysely instance bound to the one connection of this transaction: repositories build queries on it. */
    readonly db: Kysely<DB>,
    private readonly engine: Engine,
    /** That connection itself, when `db` has no plugins: batches skip Kysely's per-query layers. */
    private readonly connection: DatabaseConnection | null = null,
  ) {}

  private readCommittedNext = false;

  /** Runs this transaction at READ COMMITTED on MySQL (SQLite has a single writer); call before the first statement. */
  readCommitted(): this {
    if (this.started) throw new Error('the isolation level must be chosen before the first statement');
    this.readCommittedNext = this.engine === 'mysql';
    return this;
  }

  private query(query: CompiledQuery): Promise<QueryResult<unknown>> {
    return this.connection ? this.connection.executeQuery(query) : this.db.executeQuery(query);
  }

  /** Sends `statements` (after `BEGIN` on the first call) and returns their results by name. */
  send<S extends Statements>(statements: S): Promise<Results<S>> {
    return this.run(statements, false);
  }

  /** Sends `statements` followed by `COMMIT`; the transaction is over when this resolves. */
  commit<S extends Statements>(statements: S = {} as S): Promise<Results<S>> {
    return this.run(statements, true);
  }

  /** Ends the transaction with `ROLLBACK`, then runs `after` outside it (autocommit), in the same round trip; their results are not kept. */
  async rollback(...after: Statement[]): Promise<void> {
    const planned = after.map((s) => planOne(s, null, false));
    if (!this.started || this.finished) {
      this.finished = true;
      if (planned.length > 0) await this.execute(planned, {});
      return;
    }
    this.finished = true;
    await this.execute([ROLLBACK, ...planned], {});
  }

  private async run<S extends Statements>(statements: S, commit: boolean): Promise<Results<S>> {
    if (this.finished) throw new Error('the transaction is already over');
    const out: Record<string, unknown> = {};
    const planned = plan(statements, out);
    if (!this.started) planned.unshift(...(this.readCommittedNext ? [SET_READ_COMMITTED, BEGIN] : [BEGIN]));
    if (commit) planned.push(COMMIT);
    this.started = true;
    await this.execute(planned, out);
    if (commit) this.finished = true;
    return out as Results<S>;
  }

  /** Runs the plan and files the results of the caller's statements (not of begin/commit/guards) in `out`. */
  private execute(planned: Planned[], out: Record<string, unknown>): Promise<void> {
    return this.engine === 'mysql' && planned.length > 1 ? this.multi(planned, out) : this.oneByOne(planned, out);
  }

  private async oneByOne(planned: Planned[], out: Record<string, unknown>): Promise<void> {
    for (const p of planned) {
      const result = await this.query(p.query);
      const affectedRows = Number(result.numAffectedRows ?? 0);
      if (p.expect !== undefined && affectedRows !== p.expect) throw new UnexpectedRowCount(p.expect, affectedRows);
      place(out, p, { affectedRows, rows: result.rows as unknown[] });
    }
  }

  /** mysql2 answers a multi-statement request with one entry per statement: a result header or a row list. */
  private async multi(planned: Planned[], out: Record<string, unknown>): Promise<void> {
    // Plain loops: this runs on every callback, and flatMap/forEach cost more than the work they do here.
    const sent: Planned[] = [];
    for (const p of planned) {
      sent.push(p);
      if (p.expect !== undefined) sent.push({ query: CompiledQuery.raw(ROW_COUNT_GUARD, [p.expect]), name: null, list: false });
    }
    const texts: string[] = [];
    const parameters: unknown[] = [];
    for (const p of sent) {
      texts.push(p.query.sql);
      for (const value of p.query.parameters) parameters.push(value);
    }
    let rows: unknown[];
    try {
      // The texts are Kysely's compiled statements and the constants above; every value stays a bound parameter.
      ({ rows } = await this.query(CompiledQuery.raw(texts.join(';\n'), parameters)));
    } catch (err) {
      const guarded = planned.find((p) => p.expect !== undefined);
      if (guarded && (err as { errno?: number } | null)?.errno === ER_SUBQUERY_NO_1_ROW) throw new UnexpectedRowCount(guarded.expect!);
      throw err;
    }
    if (rows.length !== sent.length) throw new Error(`expected ${sent.length} statement results, got ${rows.length}`);
    for (let i = 0; i < sent.length; i++) {
      const p = sent[i]!;
      if (p.name === null) continue;
      const r = rows[i];
      place(out, p, Array.isArray(r) ? { affectedRows: 0, rows: r } : { affectedRows: Number((r as { affectedRows?: number }).affectedRows ?? 0), rows: [] });
    }
  }

  /** After a failure: undo whatever was done (a no-op when nothing was started or it already ended). */
  async abandon(): Promise<void> {
    if (!this.started || this.finished) return;
    this.finished = true;
    await this.query(ROLLBACK.query);
  }
}

/** Runs `work` in a batched transaction on one connection of the batch pool; rolls back when it throws or forgets to end it. */
export function withBatchedTransaction<T>(database: Database, work: (tx: BatchedTransaction) => Promise<T>): Promise<T> {
  return database.batchKysely.connection().execute(async (conn) => {
    // A plugin could rewrite results, so only a plugin-free Kysely lets the batches use the connection directly.
    const executor = conn.getExecutor();
    const connection = executor.plugins.length === 0 ? await executor.provideConnection(async (c) => c) : null;
    const tx = new BatchedTransaction(conn, database.engine, connection);
    try {
      const result = await work(tx);
      await tx.abandon(); // only does something if `work` returned without committing or rolling back
      return result;
    } catch (err) {
      await tx.abandon().catch(() => undefined);
      throw err;
    }
  });
}
