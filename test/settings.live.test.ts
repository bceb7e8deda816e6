import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { createDispatcher } from '../src/notifications/dispatcher.ts';
import { createRuntimeSettings, type RuntimeSettings } from '../src/settings/runtime-settings.ts';
import { createLogger } from '../src/shared/logger.ts';
import { systemClock } from '../src/shared/time.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { signed } from './helpers/gateway-signer.ts';
import { startReceiver } from './helpers/receiver.ts';

/** Console settings reach the live callback service and delivery loop without a restart. */
describe.each(ENGINES)('runtime settings in force on %s', (engine) => {
  let ctx: TestContext;
  let settings: RuntimeSettings;
  const holder: { wake?: () => void } = {};
  const actor = { operator: 'test-operator', remoteIp: '127.0.0.1' };
  beforeAll(async () => {
    ctx = await createTestContext(engine, {
      env: { NOTIFY_RETRY_SCHEDULE: '1h', NOTIFY_POLL_INTERVAL_MS: '50', NOTIFY_TIMEOUT_MS: '1000' },
      deps: { onEventQueued: () => holder.wake?.() },
    });
    settings = createRuntimeSettings({ db: ctx.db, config: ctx.config, clock: systemClock, logger: createLogger('silent') });
    await settings.start();
  });
  afterAll(async () => {
    await settings.stop();
    await ctx.close();
  });

  it('an allowlist saved in the console refuses callbacks at once; a reset lets them in again', async () => {
    const { createApp } = await import('../src/app.ts');
    const app = createApp({ config: ctx.config, db: ctx.db, logger: createLogger('silent'), settings });
    await ctx.api('post', '/api/orders').send({ order_no: 'LIVE1', amount: '1.00' });
    const body = signed({ order_no: 'LIVE1', transaction_id: 'T-LIVE1', amount: '1.00', status: 'success' }, TEST_GATEWAY_SECRET);
    await settings.update('callback.ip_allowlist.generic', '10.0.0.0/8', actor);
    const refused = await request(app).post('/notify').type('form').send(body);
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('forbidden');
    await settings.update('callback.ip_allowlist.generic', null, actor);
    expect((await request(app).post('/notify').type('form').send(body)).status).toBe(200);
  });

  it('a retry schedule saved in the console drives the delivery loop', async () => {
    const receiver = await startReceiver((_n, res) => {
      res.statusCode = 500;
      res.end();
    });
    const dispatcher = createDispatcher({
      db: ctx.db,
      config: ctx.config,
      logger: createLogger('silent'),
      clock: systemClock,
      retryScheduleMs: settings.retryScheduleMs,
    });
    holder.wake = dispatcher.wake;
    dispatcher.start();
    try {
      await settings.update('notify.retry_schedule', '100ms', actor);
      await ctx.api('post', '/api/orders').send({ order_no: 'LIVE2', amount: '1.00', notify_url: receiver.url });
      await request(ctx.app)
        .post('/notify')
        .type('form')
        .send(signed({ order_no: 'LIVE2', transaction_id: 'T-LIVE2', amount: '1.00', status: 'success' }, TEST_GATEWAY_SECRET));
      const deadline = Date.now() + 10_000;
      let status = '';
      while (Date.now() < deadline && status !== 'dead') {
        status = (await ctx.db.kysely.selectFrom('notifications').select('status').where('order_no', '=', 'LIVE2').executeTakeFirst())?.status ?? '';
        await new Promise((r) => setTimeout(r, 50));
      }
      // With the environment's 1h schedule it would wait an hour; the console's 100ms makes it dead in two attempts.
      expect(status).toBe('dead');
      expect(receiver.received).toHaveLength(2);
    } finally {
      await dispatcher.stop(1000);
      await receiver.close();
    }
  });
});
