import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CamelCasePlugin,
  DummyDriver,
  Kysely,
  MysqlAdapter,
  MysqlIntrospector,
  MysqlQueryCompiler,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';
import { nonceInsert } from '../src/callbacks/nonce.repository.ts';
import { paymentLogInsert } from '../src/callbacks/payment-log.repository.ts';
import { withBatchedTransaction } from '../src/db/fast-path/batched-transaction.ts';
import { listQueryTemplate, queryTemplate } from '../src/db/fast-path/query-template.ts';
import type { DB } from '../src/db/schema.ts';
import { eventInsert } from '../src/orders/order-event.repository.ts';
import { findOrderForUpdate, orderForUpdateSelect, transitionOrder, transitionUpdate } from '../src/orders/order.repository.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

/** Kysely's compile-only setup (no connection): the SQL text of each dialect, whatever database is running. */
function compileOnly(engine: 'mysql' | 'sqlite'): Kysely<DB> {
  const mysql = engine === 'mysql';
  return new Kysely<DB>({
    dialect: {
      createAdapter: () => (mysql ? new MysqlAdapter() : new SqliteAdapter()),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => (mysql ? new MysqlIntrospector(db) : new SqliteIntrospector(db)),
      createQueryCompiler: () => (mysql ? new MysqlQueryCompiler() : new SqliteQueryCompiler()),
    },
  });
}

const byStatus = (db: Kysely<DB>, v: { first: string; second: string }) =>
  db.selectFrom('orders').select('id').where('order_no', '=', v.second).where('status', '=', v.first).where('transaction_id', '=', v.second);

describe('query templates', () => {
  const mysql = compileOnly('mysql');
  const sqlite = compileOnly('sqlite');

  it('puts each input at every parameter position it compiled to, in order', () => {
    const template = queryTemplate({ first: true, second: true }, byStatus);
    expect(template.sqlFor(sqlite)).toEqual({
      sql: 'select "id" from "orders" where "order_no" = ? and "status" = ? and "transaction_id" = ?',
      positions: ['second', 'first', 'second'],
    });
    const compiled = template.bind(sqlite, { first: 'paid', second: 'O-1' }).compile();
    expect(compiled.parameters).toEqual(['O-1', 'paid', 'O-1']);
    expect(compiled.query.kind).toBe('SelectQueryNode');
  });

  it('compiles once per database, including its connections and transactions, and once more for another dialect', async () => {
    let builds = 0;
    const template = queryTemplate({ first: true, second: true }, (db, v: { first: string; second: string }) => (builds++, byStatus(db, v)));
    template.bind(sqlite, { first: 'a', second: 'b' });
    const again = template.bind(sqlite, { first: 'c', second: 'd' }).compile();
    expect(again.parameters).toEqual(['d', 'c', 'd']);
    await sqlite.connection().execute(async (conn) => template.bind(conn, { first: 'e', second: 'f' }));
    await sqlite.transaction().execute(async (trx) => template.bind(trx, { first: 'g', second: 'h' }));
    expect(builds).toBe(1);
    expect(template.bind(mysql, { first: 'a', second: 'b' }).compile().sql).toBe(
      'select `id` from `orders` where `order_no` = ? and `status` = ? and `transaction_id` = ?',
    );
    expect(builds).toBe(2);
  });

  it('refuses an input the statement does not use', () => {
    const template = queryTemplate({ first: true, second: true, third: true }, (db, v: { first: string; second: string; third: string }) => byStatus(db, v));
    expect(() => template.sqlFor(sqlite)).toThrow(/input\(s\) third not used/);
  });

  it('refuses an input that was not declared, before Kysely can drop it as undefined', () => {
    const template = queryTemplate({ scope: true } as never, (db, v: { scope: string; nonce: string }) =>
      db.insertInto('replay_nonces').values({ scope: v.scope, nonce: v.nonce, expires_at: v.scope }),
    );
    expect(() => template.sqlFor(sqlite)).toThrow(/input "nonce" is not declared/);
    // @ts-expect-error the type already asks for every input by name
    expect(() => queryTemplate({ first: true }, byStatus).sqlFor(sqlite)).toThrow(/input "second" is not declared/);
  });

  it('refuses a parameter that is not an input (a constant would be frozen into every request)', () => {
    const template = queryTemplate({ orderNo: true }, (db, v: { orderNo: string }) =>
      db.selectFrom('orders').select('id').where('order_no', '=', v.orderNo).where('status', '=', 'paid'),
    );
    expect(() => template.sqlFor(mysql)).toThrow(/parameter 2 of .* is not one of the inputs/);
  });

  it('refuses a missing value at run time', () => {
    const template = queryTemplate({ first: true, second: true }, byStatus);
    expect(() => template.bind(sqlite, { first: 'paid' } as never)).toThrow(/no value for input "second"/);
  });

  it('refuses Kysely instances with plugins, whose SQL could differ', () => {
    const template = queryTemplate({ first: true, second: true }, byStatus);
    expect(() => template.bind(sqlite.withPlugin(new CamelCasePlugin()), { first: 'a', second: 'b' })).toThrow(/plugins/);
  });

  it("compiles a list template once per list length, with each row's fields in their positions", () => {
    let builds = 0;
    const template = listQueryTemplate(
      { owner: true },
      { id: true, attempt: true },
      3,
      (db, v: { owner: string }, rows: readonly { id: number; attempt: number }[]) => {
        builds++;
        return db.insertInto('notification_attempts').values(
          rows.map((r) => ({
            notification_id: r.id,
            attempt_no: r.attempt,
            started_at: v.owner,
            duration_ms: r.attempt,
            status_code: r.id,
            error: v.owner,
            response_excerpt: v.owner,
          })),
        );
      },
    );
    const two = template
      .bind(sqlite, { owner: 'o' }, [
        { id: 1, attempt: 2 },
        { id: 3, attempt: 4 },
      ])
      .compile();
    expect(two.sql).toBe(
      'insert into "notification_attempts" ("notification_id", "attempt_no", "started_at", "duration_ms", "status_code", "error", "response_excerpt") values (?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?)',
    );
    expect(two.parameters).toEqual([1, 2, 'o', 2, 1, 'o', 'o', 3, 4, 'o', 4, 3, 'o', 'o']);
    expect(
      template
        .bind(sqlite, { owner: 'p' }, [
          { id: 5, attempt: 6 },
          { id: 7, attempt: 8 },
        ])
        .compile().parameters,
    ).toEqual([5, 6, 'p', 6, 5, 'p', 'p', 7, 8, 'p', 8, 7, 'p', 'p']);
    expect(template.bind(sqlite, { owner: 'q' }, [{ id: 9, attempt: 1 }]).compile().parameters).toEqual([9, 1, 'q', 1, 9, 'q', 'q']);
    expect(builds).toBe(2);
    // Longer than the bound: compiled per call (correct, just not kept).
    const rows = Array.from({ length: 4 }, (_, i) => ({ id: i, attempt: i }));
    expect(template.bind(sqlite, { owner: 'r' }, rows).compile().parameters).toHaveLength(28);
    template.bind(sqlite, { owner: 'r' }, rows);
    expect(builds).toBe(4);
    expect(() => template.bind(sqlite, { owner: 's' }, [])).toThrow(/at least one row/);
    expect(() => template.bind(sqlite, { owner: 's' }, [{ id: 1 } as never])).toThrow(/no value for input "0#attempt"/);
  });

  it('refuses a list template whose statement holds a constant or an undeclared row field', () => {
    const constant = listQueryTemplate({}, { id: true }, 8, (db, _v, rows: readonly { id: number }[]) =>
      db
        .selectFrom('orders')
        .select('id')
        .where(
          'id',
          'in',
          rows.map((r) => r.id),
        )
        .where('status', '=', 'paid'),
    );
    expect(() => constant.bind(mysql, {}, [{ id: 1 }])).toThrow(/parameter 2 of .* is not one of the inputs/);
    const undeclared = listQueryTemplate({}, { id: true } as never, 8, (db, _v, rows: readonly { id: number; seq: number }[]) =>
      db
        .selectFrom('orders')
        .select('id')
        .where(
          'id',
          'in',
          rows.map((r) => r.id),
        )
        .where(
          'seq',
          'in',
          rows.map((r) => r.seq),
        ),
    );
    expect(() => undeclared.bind(mysql, {}, [{ id: 1, seq: 2 }])).toThrow(/not one of the inputs/);
  });

  it('gives the hot-path statements their SQL on each engine, values as bound parameters', () => {
    const now = new Date('2026-01-02T03:04:05.678Z');
    const stamp = '2026-01-02 03:04:05.678';
    for (const [db, q] of [
      [mysql, '`'],
      [sqlite, '"'],
    ] as const) {
      const id = (sql: string) => sql.replaceAll('"', q);
      expect(nonceInsert(db, 'generic', 'n1', now).compile()).toMatchObject({
        sql: id('insert into "replay_nonces" ("scope", "nonce", "expires_at") values (?, ?, ?)'),
        parameters: ['generic', 'n1', stamp],
      });
      const paid = transitionUpdate(db, {
        orderNo: 'O1',
        fromStatus: 'pending',
        expectedSeq: 3,
        to: 'paid',
        transactionId: 'T1',
        flagged: true,
        now,
      }).compile();
      expect(paid.sql).toBe(
        id(
          'update "orders" set "status" = ?, "seq" = ?, "updated_at" = ?, "transaction_id" = coalesce(?, "transaction_id"), "paid_at" = coalesce(?, "paid_at"), "flagged" = coalesce(?, "flagged") where "order_no" = ? and "status" = ? and "seq" = ?',
        ),
      );
      expect(paid.parameters).toEqual(['paid', 4, stamp, 'T1', stamp, 1, 'O1', 'pending', 3]);
      const closed = transitionUpdate(db, { orderNo: 'O1', fromStatus: 'failed', expectedSeq: 1, to: 'closed', now }).compile();
      expect(closed.sql).toBe(paid.sql);
      expect(closed.parameters).toEqual(['closed', 2, stamp, null, null, null, 'O1', 'failed', 1]);
      const event = eventInsert(db, { eventId: 'e1', orderNo: 'O1', type: 'order.paid', seq: 4, payload: '{}', url: 'http://x', now: stamp }).compile();
      expect(event.parameters).toEqual(['e1', 'O1', 'order.paid', 4, '{}', 'http://x', 'pending', stamp, stamp, stamp]);
      const bare = paymentLogInsert(db, {
        orderNo: null,
        gateway: 'generic',
        kind: 'notify',
        verdict: 'forbidden',
        callbackData: '{}',
        remoteIp: null,
        now: stamp,
      }).compile();
      const full = paymentLogInsert(db, {
        orderNo: 'O1',
        gateway: 'generic',
        kind: 'return',
        transactionId: 'T1',
        amountMinor: 100,
        currency: 'USD',
        status: 'paid',
        verdict: 'applied',
        flagged: true,
        message: 'm'.repeat(600),
        paymentData: '{"a":1}',
        callbackData: '{}',
        remoteIp: '::1',
        now: stamp,
      }).compile();
      expect(full.sql).toBe(bare.sql);
      expect(bare.parameters).toEqual([null, 'generic', 'notify', null, null, null, null, 'forbidden', 0, null, null, '{}', null, stamp, null, null, 0]);
      expect(full.parameters).toEqual([
        'O1',
        'generic',
        'return',
        'T1',
        100,
        'USD',
        'paid',
        'applied',
        1,
        'm'.repeat(512),
        '{"a":1}',
        '{}',
        '::1',
        stamp,
        null,
        null,
        0,
      ]);
      const refused = paymentLogInsert(db, {
        orderNo: null,
        gateway: 'generic',
        kind: 'notify',
        verdict: 'bad_signature',
        callbackData: 'x',
        callbackBytes: 60_000,
        callbackSha256: 'ab'.repeat(32),
        unverified: true,
        remoteIp: null,
        now: stamp,
      }).compile();
      expect(refused.sql).toBe(bare.sql);
      expect(refused.parameters.slice(-3)).toEqual([60_000, 'ab'.repeat(32), 1]);
    }
    expect(orderForUpdateSelect(mysql, 'O1', 'mysql').compile().sql).toBe('select * from `orders` where `order_no` = ? for update');
    expect(orderForUpdateSelect(sqlite, 'O1', 'sqlite').compile().sql).toBe('select * from "orders" where "order_no" = ?');
  });
});

describe.each(ENGINES)('query templates on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
    await ctx.api('post', '/api/orders').send({ order_no: 'QT1', amount: '1.00' });
  });
  afterAll(() => ctx.close());

  const order = () =>
    ctx.db.kysely
      .selectFrom('orders')
      .select(['status', 'seq', 'transaction_id', 'paid_at', 'flagged'])
      .where('order_no', '=', 'QT1')
      .executeTakeFirstOrThrow();

  it('runs alone and in a batched transaction, and keeps the columns a transition does not set', async () => {
    const t1 = new Date('2026-01-02T03:04:05.678Z');
    expect(
      await transitionOrder(ctx.db.kysely, { orderNo: 'QT1', fromStatus: 'pending', expectedSeq: 0, to: 'paid', transactionId: 'T1', flagged: true, now: t1 }),
    ).toBe(true);
    expect(await order()).toEqual({ status: 'paid', seq: 1, transaction_id: 'T1', paid_at: '2026-01-02 03:04:05.678', flagged: 1 });
    expect(await transitionOrder(ctx.db.kysely, { orderNo: 'QT1', fromStatus: 'pending', expectedSeq: 0, to: 'paid', now: t1 })).toBe(false);

    const read = await withBatchedTransaction(ctx.db, async (tx) => {
      const { locked } = await tx.send({ nonce: nonceInsert(tx.db, 'qt', 'n1', t1), locked: orderForUpdateSelect(tx.db, 'QT1', ctx.db.engine) });
      await tx.commit({
        change: transitionUpdate(tx.db, { orderNo: 'QT1', fromStatus: 'paid', expectedSeq: 1, to: 'closed', now: new Date('2026-01-03T00:00:00Z') }),
      });
      return locked.rows;
    });
    expect(read).toMatchObject([{ order_no: 'QT1', status: 'paid', seq: 1 }]);
    expect(await order()).toEqual({ status: 'closed', seq: 2, transaction_id: 'T1', paid_at: '2026-01-02 03:04:05.678', flagged: 1 });
    expect(await findOrderForUpdate(ctx.db.kysely, 'QT1', ctx.db.engine)).toMatchObject({ order_no: 'QT1', status: 'closed' });
    expect(await findOrderForUpdate(ctx.db.kysely, 'nope', ctx.db.engine)).toBeUndefined();
    expect(await ctx.db.kysely.selectFrom('replay_nonces').select('nonce').where('scope', '=', 'qt').execute()).toEqual([{ nonce: 'n1' }]);
  });
});
