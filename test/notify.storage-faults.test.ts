import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { sql } from 'kysely';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { signed } from './helpers/gateway-signer.ts';

/** Never an acknowledgement before the commit, never half a change: the log, transition and event commit together. */
describe.each(ENGINES)('storage faults during /notify on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  const pay = (order_no: string) =>
    request(ctx.app)
      .post('/notify')
      .type('form')
      .send(signed({ order_no, transaction_id: `T-${order_no}`, amount: '3.00', status: 'success' }, TEST_GATEWAY_SECRET));

  async function installFailingTrigger(table: 'notifications' | 'payment_logs') {
    if (engine === 'sqlite') {
      await sql
        .raw(`CREATE TRIGGER fail_${table} BEFORE INSERT ON ${table} BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END`)
        .execute(ctx.db.kysely);
    } else {
      await sql
        .raw(`CREATE TRIGGER fail_${table} BEFORE INSERT ON ${table} FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'simulated storage failure'`)
        .execute(ctx.db.kysely);
    }
  }
  const dropTrigger = (table: string) => sql.raw(`DROP TRIGGER fail_${table}`).execute(ctx.db.kysely);

  it('rolls back the transition when the outbox insert fails, answers 5xx, and applies cleanly on retry', async () => {
    await ctx.api('post', '/api/orders').send({ order_no: 'SF1', amount: '3.00', notify_url: 'https://m.example/n' });
    await installFailingTrigger('notifications');
    try {
      const res = await pay('SF1');
      expect(res.status).toBeGreaterThanOrEqual(500);
      expect(res.body.success).toBe(false);
      const row = await ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', 'SF1').executeTakeFirstOrThrow();
      expect(row).toMatchObject({ status: 'pending', seq: 0, transaction_id: null });
      const logs = await ctx.db.kysely.selectFrom('payment_logs').select('verdict').where('order_no', '=', 'SF1').execute();
      expect(logs.map((l) => l.verdict)).not.toContain('applied');
    } finally {
      await dropTrigger('notifications');
    }
    const retry = await pay('SF1');
    expect(retry.status).toBe(200);
    expect(retry.body.data.status).toBe('paid');
    const events = await ctx.db.kysely.selectFrom('notifications').select('seq').where('order_no', '=', 'SF1').execute();
    expect(events).toEqual([{ seq: 1 }]);
  });

  it('does not acknowledge when the payment log cannot be written', async () => {
    await ctx.api('post', '/api/orders').send({ order_no: 'SF2', amount: '3.00' });
    await installFailingTrigger('payment_logs');
    try {
      const res = await pay('SF2');
      expect(res.status).toBeGreaterThanOrEqual(500);
      const row = await ctx.db.kysely.selectFrom('orders').select(['status', 'seq']).where('order_no', '=', 'SF2').executeTakeFirstOrThrow();
      expect(row).toEqual({ status: 'pending', seq: 0 });
    } finally {
      await dropTrigger('payment_logs');
    }
  });

  it('answers 503 unavailable when the database is gone', async () => {
    const other = await createTestContext(engine);
    await other.api('post', '/api/orders').send({ order_no: 'SF3', amount: '3.00' });
    await other.db.close();
    const res = await request(other.app)
      .post('/notify')
      .type('form')
      .send(signed({ order_no: 'SF3', transaction_id: 'T', amount: '3.00', status: 'success' }, TEST_GATEWAY_SECRET));
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ success: false, code: 'unavailable' });
    await other.database.drop();
  });
});
