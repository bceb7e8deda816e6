import { createQueryId, type Compilable, type CompiledQuery, type QueryResult, type RootOperationNode } from 'kysely';
import type { Executor } from '../database.ts';

/**
 * A statement whose SQL is built and compiled by Kysely once per database, then reused with new values.
 *
 * The build function receives a placeholder object for each named input (a "sentinel") instead of a value;
 * after compiling, every bound parameter must be one of those sentinels, so the positions of the inputs
 * are known and a request only fills in values. The statement keeps its bound parameters (`?`): values
 * never become SQL text.
 */

/** Stands for one named input while the template compiles; never sent to the database. */
class Sentinel {
  constructor(readonly name: string) {}
}

/** The named inputs of a template, as an object type (interfaces included). */
type Inputs = object;

/** Each input of `I` listed exactly once (the compiler checks that none is missing or extra). */
export type InputNames<I extends Inputs> = { readonly [K in keyof I]-?: true };

interface Compiled {
  sql: string;
  query: RootOperationNode;
  /** The input whose value goes to each parameter position, in order. */
  positions: readonly string[];
}

/** A template's statement with this request's values, bound to the executor it runs on. */
export class BoundQuery<R> implements Compilable<R> {
  constructor(
    private readonly db: Executor,
    private readonly compiled: CompiledQuery<R>,
  ) {}

  compile(): CompiledQuery<R> {
    return this.compiled;
  }

  /** Runs the statement alone (outside a batch); rows and affected rows come back as Kysely reports them. */
  execute(): Promise<QueryResult<R>> {
    return this.db.executeQuery(this.compiled);
  }
}

export class QueryTemplate<I extends Inputs, R> {
  private readonly names: readonly string[];
  /** Keyed by the dialect adapter: one per root Kysely, shared by its connections and transactions. */
  private readonly byAdapter = new WeakMap<object, Compiled>();

  constructor(
    inputs: InputNames<I>,
    private readonly build: (db: Executor, inputs: I) => Compilable<R>,
  ) {
    this.names = Object.keys(inputs);
  }

  /** The statement with `values` in their parameter positions, compiled on first use for `db`'s dialect. */
  bind(db: Executor, values: I): BoundQuery<R> {
    return this.bindEach(db, (name) => (values as Record<string, unknown>)[name]);
  }

  /** {@link bind} with each input's value read through `valueOf` (a list template reads its rows in place). */
  bindEach(db: Executor, valueOf: (name: string) => unknown): BoundQuery<R> {
    const compiled = this.compiledFor(db);
    const parameters = compiled.positions.map((name) => {
      const value = valueOf(name);
      // A missing value would be bound as NULL by one driver and refused by another: refuse it here.
      if (value === undefined) throw new Error(`query template: no value for input "${name}"`);
      return value;
    });
    return new BoundQuery(db, { sql: compiled.sql, query: compiled.query, parameters, queryId: createQueryId() });
  }

  /** The compiled form for `db`'s dialect (the SQL of this instance's engine), compiling it if needed. */
  sqlFor(db: Executor): { sql: string; positions: readonly string[] } {
    const { sql, positions } = this.compiledFor(db);
    return { sql, positions };
  }

  private compiledFor(db: Executor): Compiled {
    // getExecutor() is marked internal in Kysely's typings; its adapter is the one object per root Kysely we can key on.
    const executor = db.getExecutor();
    // Plugins may rewrite a query, and a connection's copy of them is a new array: do not guess, refuse.
    if (executor.plugins.length > 0) throw new Error('query template: Kysely instances with plugins are not supported');
    let compiled = this.byAdapter.get(executor.adapter);
    if (!compiled) {
      compiled = this.compile(db);
      this.byAdapter.set(executor.adapter, compiled);
    }
    return compiled;
  }

  private compile(db: Executor): Compiled {
    const sentinels: Record<string, Sentinel> = Object.fromEntries(this.names.map((name) => [name, new Sentinel(name)]));
    // Reading an undeclared input fails here: Kysely would silently drop an `undefined` insert column.
    const declared = new Proxy(sentinels, {
      get: (target, key) => {
        if (typeof key === 'string' && !(key in target)) throw new Error(`query template: input "${key}" is not declared (${this.names.join(', ')})`);
        return Reflect.get(target, key);
      },
    });
    const { sql, query, parameters } = this.build(db, declared as unknown as I).compile();
    const positions = parameters.map((parameter, index) => {
      // Constants must be inputs too: otherwise they would be frozen into the first request's parameters unnoticed.
      if (!(parameter instanceof Sentinel) || sentinels[parameter.name] !== parameter) {
        throw new Error(`query template: parameter ${index + 1} of "${sql}" is not one of the inputs (${this.names.join(', ')})`);
      }
      return parameter.name;
    });
    const unused = this.names.filter((name) => !positions.includes(name));
    if (unused.length > 0) throw new Error(`query template: input(s) ${unused.join(', ')} not used by "${sql}"`);
    return { sql, query, positions };
  }
}

/**
 * The list lengths kept compiled by the list templates a grouped callback transaction sends (its locked read,
 * nonces, transitions, outbox events, payment logs): a group is never longer (MAX_GROUP ≤ this, checked when
 * callback.service.ts loads), so no grouped statement is compiled per call.
 */
export const GROUP_LIST_ROWS = 64;

/**
 * A statement with a list of rows whose length varies (an IN list, a multi-row insert): one template per
 * list length, kept for lengths up to `maxRows` (longer lists are compiled per call). Each row's fields are
 * inputs like the others, so values still only ever travel as bound parameters.
 */
export class ListQueryTemplate<I extends Inputs, T extends Inputs, R> {
  private readonly fields: readonly string[];
  private readonly bySize = new Map<
    number,
    { template: QueryTemplate<Record<string, unknown>, R>; slots: ReadonlyMap<string, { row: number; field: string }> }
  >();

  constructor(
    private readonly inputs: InputNames<I>,
    rowInputs: InputNames<T>,
    private readonly maxRows: number,
    private readonly build: (db: Executor, inputs: I, rows: readonly T[]) => Compilable<R>,
  ) {
    this.fields = Object.keys(rowInputs);
  }

  /** The statement for `rows` (at least one) with `values` and the rows' fields in their parameter positions. */
  bind(db: Executor, values: I, rows: readonly T[]): BoundQuery<R> {
    if (rows.length === 0) throw new Error('query template: a list template needs at least one row');
    const { template, slots } = this.forSize(rows.length);
    // Each parameter is read from its row in place: no object holding every row's fields is built per call.
    return template.bindEach(db, (name) => {
      const slot = slots.get(name);
      return slot ? (rows[slot.row] as Record<string, unknown>)[slot.field] : (values as Record<string, unknown>)[name];
    });
  }

  private forSize(size: number) {
    const cached = this.bySize.get(size);
    if (cached) return cached;
    // `<row>#<field>` cannot clash with an input name, which is an identifier.
    const names = Array.from({ length: size }, (_, i) => this.fields.map((field) => `${i}#${field}`));
    const inputs: Record<string, true> = { ...(this.inputs as Record<string, true>) };
    for (const name of names.flat()) inputs[name] = true;
    const slots = new Map(names.flatMap((row, i) => row.map((name, f) => [name, { row: i, field: this.fields[f]! }] as const)));
    const rowsOf = (v: Record<string, unknown>) => names.map((row) => Object.fromEntries(row.map((name, f) => [this.fields[f]!, v[name]])) as T);
    const entry = { template: new QueryTemplate(inputs, (db, v: Record<string, unknown>) => this.build(db, v as I, rowsOf(v))), slots };
    if (size <= this.maxRows) this.bySize.set(size, entry);
    return entry;
  }
}

/** A list template (see {@link ListQueryTemplate}): `inputs` as for queryTemplate, `rowInputs` the fields of each row. */
export function listQueryTemplate<I extends Inputs, T extends Inputs, R>(
  inputs: InputNames<I>,
  rowInputs: InputNames<T>,
  maxRows: number,
  build: (db: Executor, inputs: I, rows: readonly T[]) => Compilable<R>,
): ListQueryTemplate<I, T, R> {
  return new ListQueryTemplate(inputs, rowInputs, maxRows, build);
}

/** A statement built once per database; `inputs` lists its named inputs, `build` writes it with Kysely. */
export function queryTemplate<I extends Inputs, R>(inputs: InputNames<I>, build: (db: Executor, inputs: I) => Compilable<R>): QueryTemplate<I, R> {
  return new QueryTemplate(inputs, build);
}
