import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectAffectedRows } from '../src/db/fast-path/batch-statements.ts';
import { BatchedTransaction, UnexpectedRowCount, withBatchedTransaction } from '../src/db/fast-path/batched-transaction.ts';
import { nonceInsert } from '../src/callbacks/nonce.repository.ts';
import { isUniqueViolation } from '../src/db/db-errors.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

/** The statement batches the callback transaction rides on (one round trip per batch on MySQL). */
describe.each(ENGINES)('batched transactions on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
    await ctx.api('post', '/api/orders').send({ order_no: 'BT1', amount: '1.00' });
  });
  afterAll(() => ctx.close());

  const later = new Date(Date.now() + 60_000);
  const status = async (orderNo: string) =>
    (await ctx.db.kysely.selectFrom('orders').select('status').where('order_no', '=', orderNo).executeTakeFirstOrThrow()).status;
  const nonces = async (nonce: string) => (await ctx.db.kysely.selectFrom('replay_nonces').select('nonce').where('nonce', '=', nonce).execute()).length;
  const setStatus = (tx: { db: TestContext['db']['kysely'] }, from: string, to: string) =>
    tx.db.updateTable('orders').set({ status: to }).where('order_no', '=', 'BT1').where('status', '=', from);

  it('returns one result per statement, reads and writes alike, and commits them together', async () => {
    const results = await withBatchedTransaction(ctx.db, async (tx) => {
      const first = await tx.send({
        nonce: nonceInsert(tx.db, 'test', 'n1', later),
        order: tx.db.selectFrom('orders').select(['order_no', 'status']).where('order_no', '=', 'BT1'),
      });
      const second = await tx.commit({ change: setStatus(tx, 'pending', 'failed') });
      return { ...first, ...second };
    });
    expect(Object.keys(results)).toEqual(['nonce', 'order', 'change']);
    expect(results.nonce.affectedRows).toBe(1);
    expect(results.order.rows).toEqual([{ order_no: 'BT1', status: 'pending' }]);
    expect(results.change.affectedRows).toBe(1);
    expect(await status('BT1')).toBe('failed');
    expect(await nonces('n1')).toBe(1);
  });

  it.runIf(engine === 'mysql')('readCommitted() runs that transaction at READ COMMITTED and the next one at the session default', async () => {
    await ctx.api('post', '/api/orders').send({ order_no: 'BTISO', amount: '1.00' });
    const seqOf = (tx: BatchedTransaction) => tx.db.selectFrom('orders').select('seq').where('order_no', '=', 'BTISO');
    const bumpElsewhere = () =>
      ctx.db.kysely
        .updateTable('orders')
        .set((eb) => ({ seq: eb('seq', '+', 1) }))
        .where('order_no', '=', 'BTISO')
        .execute();
    // A read, a commit by another connection, the same read: READ COMMITTED sees the change, REPEATABLE READ does not.
    const sees = await ctx.db.batchKysely.connection().execute(async (conn) => {
      const seesOthersCommit = async (choose: (tx: BatchedTransaction) => BatchedTransaction) => {
        const tx = choose(new BatchedTransaction(conn, 'mysql'));
        const first = await tx.send({ seq: seqOf(tx) });
        await bumpElsewhere();
        const second = await tx.send({ seq: seqOf(tx) });
        await tx.rollback();
        return (first.seq.rows[0] as { seq: number }).seq !== (second.seq.rows[0] as { seq: number }).seq;
      };
      return [await seesOthersCommit((tx) => tx.readCommitted()), await seesOthersCommit((tx) => tx)];
    });
    expect(sees).toEqual([true, false]);
    await expect(
      withBatchedTransaction(ctx.db, async (tx) => {
        await tx.send({ seq: seqOf(tx) });
        tx.readCommitted();
      }),
    ).rejects.toThrow(/before the first statement/);
  });

  it('stops before COMMIT when a guarded statement affects another number of rows, and rolls back', async () => {
    const attempt = withBatchedTransaction(ctx.db, async (tx) => {
      await tx.send({ nonce: nonceInsert(tx.db, 'test', 'n2', later) });
      await tx.commit({ change: expectAffectedRows(setStatus(tx, 'pending', 'paid'), 1), nonce: nonceInsert(tx.db, 'test', 'n3', later) });
    });
    await expect(attempt).rejects.toBeInstanceOf(UnexpectedRowCount);
    expect(await status('BT1')).toBe('failed');
    expect(await nonces('n2')).toBe(0);
    expect(await nonces('n3')).toBe(0);
  });

  it('surfaces a failing statement as the driver error and rolls back what the batch did before it', async () => {
    const attempt = withBatchedTransaction(ctx.db, async (tx) => {
      await tx.commit({ change: setStatus(tx, 'failed', 'closed'), nonce: nonceInsert(tx.db, 'test', 'n1', later) });
    });
    const err = await attempt.catch((e: unknown) => e);
    expect(isUniqueViolation(err)).toBe(true);
    expect(await status('BT1')).toBe('failed');
  });

  it('rolls back and then runs statements outside the transaction, in one go', async () => {
    await withBatchedTransaction(ctx.db, async (tx) => {
      await tx.send({ nonce: nonceInsert(tx.db, 'test', 'n4', later), change: setStatus(tx, 'failed', 'closed') });
      await tx.rollback(nonceInsert(tx.db, 'test', 'n5', later));
    });
    expect(await status('BT1')).toBe('failed');
    expect(await nonces('n4')).toBe(0);
    expect(await nonces('n5')).toBe(1);
  });

  it('rolls back work that returns without ending the transaction', async () => {
    await withBatchedTransaction(ctx.db, async (tx) => {
      await tx.send({ nonce: nonceInsert(tx.db, 'test', 'n6', later) });
    });
    expect(await nonces('n6')).toBe(0);
  });
});
