import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallbackService } from '../src/callbacks/callback.service.ts';
import { createGenericGateway } from '../src/callbacks/gateways/generic.ts';
import { systemClock } from '../src/shared/time.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { gatewaySign, nowSeconds } from './helpers/gateway-signer.ts';

/**
 * The sandbox checks that an order is pending before it pays; an order closed between that check and the
 * sandbox's callback must still not become paid: the decision is re-made on the locked row.
 */
describe.each(ENGINES)('a sandbox payment racing a close on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  it.each([['closed'], ['failed']])('a sandbox-signed payment reaching a %s order is refused, nothing changes', async (status) => {
    const no = `SBR-${status}`;
    expect(
      (await ctx.api('post', '/api/orders').send({ order_no: no, amount: '5.00', payment_method: 'sandbox', notify_url: 'https://merchant.example/n' })).status,
    ).toBe(201);
    if (status === 'closed') expect((await ctx.api('post', `/api/orders/${no}/close`)).status).toBe(200);
    else await ctx.db.kysely.updateTable('orders').set({ status: 'failed', seq: 1 }).where('order_no', '=', no).execute();
    const before = await ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();

    const callbacks = createCallbackService({ db: ctx.db, clock: systemClock, allowlist: () => null });
    const params = { order_no: no, transaction_id: `SBX-${no}`, amount: '5.00', currency: 'CNY', status: 'success', timestamp: nowSeconds(), nonce: `n-${no}` };
    const signedParams = { ...params, sign: gatewaySign(params, TEST_GATEWAY_SECRET) };
    const outcome = await callbacks.handle({
      gateway: createGenericGateway('sandbox', TEST_GATEWAY_SECRET),
      kind: 'notify',
      params: signedParams,
      raw: '',
      headers: {},
      remoteIp: null,
      trusted: true,
    });

    expect(outcome).toMatchObject({ verdict: 'invalid_state', code: 'invalid_state', status: 409 });
    const after = await ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
    expect(after).toEqual(before);
    const events = await ctx.db.kysely.selectFrom('notifications').select('type').where('order_no', '=', no).execute();
    expect(events.map((e) => e.type)).toEqual(status === 'closed' ? ['order.closed'] : []);
    // The same late payment through the generic gateway is the documented closed → paid (flagged) rule.
    const generic = await callbacks.handle({
      gateway: createGenericGateway('generic', TEST_GATEWAY_SECRET),
      kind: 'notify',
      params: { ...signedParams, nonce: `g-${no}`, sign: gatewaySign({ ...params, nonce: `g-${no}` }, TEST_GATEWAY_SECRET) },
      raw: '',
      headers: {},
      remoteIp: null,
    });
    expect(generic.verdict).toBe('applied');
  });
});
