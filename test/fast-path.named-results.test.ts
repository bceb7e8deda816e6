import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nonceInsert } from '../src/callbacks/nonce.repository.ts';
import { joinStatements } from '../src/db/fast-path/batch-statements.ts';
import { withBatchedTransaction, type BatchedTransaction } from '../src/db/fast-path/batched-transaction.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

/** A batch's results are read by the names of its statements, never by position. */
describe.each(ENGINES)('batch results by name on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
    for (const order_no of ['NR1', 'NR2']) expect((await ctx.api('post', '/api/orders').send({ order_no, amount: '1.00' })).status).toBe(201);
  });
  afterAll(() => ctx.close());

  const later = new Date(Date.now() + 60_000);
  const orderOf = (tx: BatchedTransaction, orderNo: string) => tx.db.selectFrom('orders').select(['order_no', 'status']).where('order_no', '=', orderNo);
  const nonces = async (scope: string) =>
    (await ctx.db.kysely.selectFrom('replay_nonces').select('nonce').where('scope', '=', scope).orderBy('nonce').execute()).map((r) => r.nonce);

  it('a statement added in front of a read leaves the read under its own name', async () => {
    const alone = await withBatchedTransaction(ctx.db, (tx) => tx.commit({ order: orderOf(tx, 'NR1') }));
    const behind = await withBatchedTransaction(ctx.db, (tx) =>
      tx.commit({ nonce: nonceInsert(tx.db, 'nr', 'a', later), other: orderOf(tx, 'NR2'), order: orderOf(tx, 'NR1') }),
    );
    expect(alone.order.rows).toEqual([{ order_no: 'NR1', status: 'pending' }]);
    expect(behind.order.rows).toEqual(alone.order.rows);
    expect(behind.other.rows).toEqual([{ order_no: 'NR2', status: 'pending' }]);
    expect(behind.nonce).toEqual({ affectedRows: 1, rows: [] });
    expect(await nonces('nr')).toEqual(['a']);
  });

  it('a list of statements gives a list of results in its order, an empty list none, and undefined no statement', async () => {
    const results = await withBatchedTransaction(ctx.db, (tx) =>
      tx.commit({
        inserts: [nonceInsert(tx.db, 'nr-list', 'b', later), nonceInsert(tx.db, 'nr-list', 'c', later)],
        nothing: [],
        skipped: undefined,
        reads: [orderOf(tx, 'NR2'), orderOf(tx, 'NR1')],
      }),
    );
    expect(Object.keys(results)).toEqual(['inserts', 'nothing', 'reads']);
    expect(results.inserts.map((r) => r.affectedRows)).toEqual([1, 1]);
    expect(results.nothing).toEqual([]);
    expect(results.skipped).toBeUndefined();
    expect(results.reads.map((r) => r.rows)).toEqual([[{ order_no: 'NR2', status: 'pending' }], [{ order_no: 'NR1', status: 'pending' }]]);
    expect(await nonces('nr-list')).toEqual(['b', 'c']);
  });

  it('refuses a numeric name (it would be sent out of the written order) before anything runs', async () => {
    const refused = withBatchedTransaction(ctx.db, (tx) =>
      tx.commit({ first: nonceInsert(tx.db, 'nr-num', 'd', later), 2: nonceInsert(tx.db, 'nr-num', 'e', later) }),
    );
    await expect(refused).rejects.toThrow(/statement name "2"/);
    expect(await nonces('nr-num')).toEqual([]);
  });

  it('joinStatements keeps both sets in order and refuses a name used in both', async () => {
    const joined = await withBatchedTransaction(ctx.db, (tx) =>
      tx.commit(joinStatements({ nonce: nonceInsert(tx.db, 'nr-join', 'f', later) }, { order: orderOf(tx, 'NR1') })),
    );
    expect(Object.keys(joined)).toEqual(['nonce', 'order']);
    expect(joined.order.rows).toEqual([{ order_no: 'NR1', status: 'pending' }]);
    await expect(
      withBatchedTransaction(ctx.db, async (tx) => tx.commit(joinStatements({ order: orderOf(tx, 'NR1') }, { order: orderOf(tx, 'NR2') }))),
    ).rejects.toThrow(/"order" is used twice/);
  });
});
