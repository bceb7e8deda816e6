import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRefundSchema, genericRefundNotifySchema, refundJsonSchema, refundListSchema } from '../src/openapi/refund.schemas.ts';
import { notifyResultSchema } from '../src/openapi/request.schemas.ts';
import { errorEnvelopeSchema, notificationJsonSchema, orderDetailSchema, orderJsonSchema, paymentJsonSchema } from '../src/openapi/response.schemas.ts';
import { TEST_GATEWAY_SECRET } from './helpers/context.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { ENGINES } from './helpers/engines.ts';
import { gatewaySign, nowSeconds, signed } from './helpers/gateway-signer.ts';
import { codesOf, expectShape, resolve, type Json } from './helpers/openapi.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

/**
 * The refund operations of /openapi.json: what the document says, and that the real answers (against a generic
 * refund stand-in on 127.0.0.1 that checks each request's signature with the test's own signer) match it.
 */

const REFUND_FIELDS = [
  'refund_no',
  'order_no',
  'amount',
  'currency',
  'status',
  'reason',
  'gateway',
  'gateway_refund_id',
  'failure_reason',
  'created_at',
  'completed_at',
];

type Paths = Record<string, Record<string, Json>>;

/** The schema a success response's envelope carries as `data`, resolved. */
function dataOf(doc: Json, response: Json): Json {
  const envelope = resolve(doc, (((response.content as Json)['application/json'] as Json).schema as Json).$ref as string) as Json;
  const data = (envelope.properties as Record<string, Json>).data!;
  return (typeof data.$ref === 'string' ? resolve(doc, data.$ref) : data) as Json;
}

/** The generic gateway as a stand-in: checks the signature of every request; refund requests answer as `answer` says. */
async function startGenericGateway() {
  let answer: { status: number; body: string } = { status: 200, body: 'ok' };
  const gateway = await startReceiver((_n, res, entry) => {
    const form = Object.fromEntries(new URLSearchParams(entry.body)) as Record<string, string>;
    if (form.sign !== gatewaySign(form, TEST_GATEWAY_SECRET, (form.sign_type ?? 'MD5') as 'MD5')) return res.writeHead(401).end('bad sign');
    res.writeHead(answer.status).end(answer.body);
  });
  return Object.assign(gateway, { answerWith: (status: number, body: string) => (answer = { status, body }) });
}

describe('GET /openapi.json: refunds', () => {
  let ctx: DeliveryContext;
  let doc: Json;
  let paths: Paths;
  let gateway: Awaited<ReturnType<typeof startGenericGateway>>;
  beforeAll(async () => {
    gateway = await startGenericGateway();
    ctx = await createDeliveryContext('sqlite', { GENERIC_REFUND_URL: gateway.url });
    doc = (await request(ctx.app).get('/openapi.json').expect(200)).body as Json;
    paths = doc.paths as Paths;
  });
  afterAll(async () => {
    await ctx?.close();
    await gateway?.close();
  });

  it('POST /api/orders/{order_no}/refunds: JSON or form, 201 new, 200 replay, and every refusal with its code', () => {
    const post = paths['/api/orders/{order_no}/refunds']!.post!;
    expect(post.security).toEqual([{ ApiKey: [] }, { BearerApiKey: [] }]);
    const content = (post.requestBody as Json).content as Record<string, { schema: Json }>;
    expect(Object.keys(content).sort()).toEqual(['application/json', 'application/x-www-form-urlencoded']);
    const body = resolve(doc, content['application/json']!.schema.$ref as string) as Json;
    expect(content['application/x-www-form-urlencoded']!.schema).toEqual(content['application/json']!.schema);
    expect(body.required).toEqual(['amount']);
    const props = body.properties as Record<string, Json>;
    expect(Object.keys(props).sort()).toEqual(['amount', 'reason', 'refund_no']);
    expect(props.refund_no).toMatchObject({ type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' });
    expect(props.reason).toMatchObject({ type: 'string', maxLength: 256 });

    const responses = post.responses as Record<string, Json>;
    expect(Object.keys(responses).sort()).toEqual(['200', '201', '400', '401', '403', '404', '409', '413', '415', '429', '500', '503']);
    expect(codesOf(doc, responses['400']!)).toEqual(['validation_failed']);
    expect(codesOf(doc, responses['404']!)).toEqual(['not_found']);
    expect(codesOf(doc, responses['409']!)).toEqual(expect.arrayContaining(['refund_exists', 'refund_exceeds_paid', 'invalid_state', 'not_refundable']));
    for (const status of ['200', '201']) {
      const refund = dataOf(doc, responses[status]!);
      expect(refund.required).toEqual(REFUND_FIELDS);
      expect((refund.properties as Record<string, Json>).status).toMatchObject({ enum: ['pending', 'succeeded', 'failed'] });
    }
    expect(String(responses['200']!.description)).toMatch(/identical/);
    expect(String(post.description)).toMatch(/refund_exists/);
  });

  it('GET /api/orders/{order_no}/refunds and GET /api/refunds/{refund_no}', () => {
    const list = paths['/api/orders/{order_no}/refunds']!.get!;
    const listed = dataOf(doc, (list.responses as Record<string, Json>)['200']!);
    expect(listed).toMatchObject({ type: 'array', items: { $ref: '#/components/schemas/Refund' } });
    const one = paths['/api/refunds/{refund_no}']!.get!;
    expect(one.parameters).toEqual([
      expect.objectContaining({ name: 'refund_no', in: 'path', required: true, schema: expect.objectContaining({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }),
    ]);
    for (const op of [list, one]) {
      const responses = op.responses as Record<string, Json>;
      expect(Object.keys(responses).sort()).toEqual(['200', '400', '401', '403', '404', '429', '500', '503']);
    }
    expect(dataOf(doc, (one.responses as Record<string, Json>)['200']!).required).toEqual(REFUND_FIELDS);
  });

  it('the order gains refunded_amount and status refunded; the detail its refunds; notifications the refund events', () => {
    const schemas = (doc.components as Record<string, Record<string, Json>>).schemas!;
    const order = schemas.Order!;
    expect(order.required).toContain('refunded_amount');
    expect((order.properties as Record<string, Json>).status).toMatchObject({ enum: ['pending', 'paid', 'failed', 'closed', 'refunded'] });
    const detail = schemas.OrderDetail!.properties as Record<string, Json>;
    expect(detail.refunds).toMatchObject({ type: 'array', items: { $ref: '#/components/schemas/Refund' } });
    expect((schemas.Notification!.properties as Record<string, Json>).type).toMatchObject({
      enum: ['order.paid', 'order.failed', 'order.closed', 'refund.succeeded', 'refund.failed'],
    });
  });

  it('documents the generic refund notification at /notify', () => {
    const content = (paths['/notify']!.post!.requestBody as Json).content as Record<string, { schema: Json }>;
    for (const media of Object.values(content)) {
      expect(media.schema.oneOf).toEqual([{ $ref: '#/components/schemas/GenericNotifyParams' }, { $ref: '#/components/schemas/GenericRefundNotifyParams' }]);
    }
    const notice = (doc.components as Record<string, Record<string, Json>>).schemas!.GenericRefundNotifyParams!;
    expect(notice.required).toEqual(expect.arrayContaining(['notify_type', 'order_no', 'refund_no', 'refund_amount', 'status', 'sign']));
    expect((notice.properties as Record<string, Json>).status).toMatchObject({ enum: ['refund_success', 'refund_failed'] });
  });

  it('has refund examples that the schemas accept', () => {
    const schemas = (doc.components as Record<string, Record<string, Json>>).schemas!;
    const first = (id: string) => (schemas[id]!.examples as unknown[])[0];
    expect(createRefundSchema.safeParse(first('CreateRefundRequest')).success).toBe(true);
    expect(genericRefundNotifySchema.safeParse(first('GenericRefundNotifyParams')).success).toBe(true);
    expectShape(refundJsonSchema, first('Refund'), 'Refund example');
    expectShape(refundJsonSchema, (first('RefundResponse') as { data: unknown }).data, 'RefundResponse example');
    expectShape(orderJsonSchema, first('Order'), 'Order example');
  });

  describe.each(ENGINES)('matches the real answers on %s', (engine) => {
    let live: DeliveryContext;
    let merchant: Receiver;
    beforeAll(async () => {
      live = engine === 'sqlite' ? ctx : await createDeliveryContext(engine, { GENERIC_REFUND_URL: gateway.url });
      merchant = await startReceiver();
    });
    afterAll(async () => {
      await merchant?.close();
      if (live !== ctx) await live?.close();
    });

    const documented = (method: string, path: string) => Object.keys(paths[path]![method]!.responses as Json);
    const refund = async (orderNo: string, body: Json, status: number) => {
      const res = await live.api('post', `/api/orders/${orderNo}/refunds`).send(body);
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      expect(documented('post', '/api/orders/{order_no}/refunds')).toContain(String(status));
      if (status < 300) expectShape(refundJsonSchema, res.body.data, `refund ${status}`);
      else expectShape(errorEnvelopeSchema, res.body, `refund ${status}`);
      return res.body as { data: Json; code?: string; message: string };
    };
    const settle = async (orderNo: string, refundNo: string, amount: string, status: string) => {
      const params = { notify_type: 'refund', order_no: orderNo, refund_no: refundNo, refund_amount: amount, currency: 'CNY', status };
      const res = await request(live.app)
        .post('/notify')
        .type('form')
        .send(signed({ ...params, timestamp: nowSeconds(), nonce: `n-${refundNo}` }, TEST_GATEWAY_SECRET, 'HMAC-SHA256'));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expectShape(notifyResultSchema, res.body.data, 'refund notification answer');
    };

    it('create, replay, refusals, list, one refund, settlement: every answer as documented', async () => {
      const no = await live.paidOrder(merchant.url, '10.00');
      gateway.answerWith(200, 'accepted');
      const created = await refund(no, { amount: '4.00', reason: 'damaged', refund_no: `RF-${no}-1` }, 201);
      expect(created.data).toMatchObject({ status: 'pending', amount: '4.00', gateway: 'generic', completed_at: null });
      expect((await refund(no, { amount: '4.00', reason: 'damaged', refund_no: `RF-${no}-1` }, 200)).data).toEqual(created.data);
      expect((await refund(no, { amount: '4.01', reason: 'damaged', refund_no: `RF-${no}-1` }, 409)).code).toBe('refund_exists');
      expect((await refund(no, { amount: '6.01' }, 409)).code).toBe('refund_exceeds_paid');
      expect((await refund(no, { amount: '1.234' }, 400)).code).toBe('validation_failed');
      expect((await refund(`${no}-NONE`, { amount: '1.00' }, 404)).code).toBe('not_found');
      expect((await refund(no, { amount: '1.00', refund_no: 'not a number' }, 400)).code).toBe('validation_failed');

      gateway.answerWith(422, 'insufficient merchant balance');
      const refused = await refund(no, { amount: '1.00', refund_no: `RF-${no}-2` }, 201);
      expect(refused.data).toMatchObject({ status: 'failed', failure_reason: 'insufficient merchant balance' });

      gateway.answerWith(200, 'accepted');
      await settle(no, `RF-${no}-1`, '4.00', 'refund_success');
      await refund(no, { amount: '6.00', refund_no: `RF-${no}-3` }, 201);
      await settle(no, `RF-${no}-3`, '6.00', 'refund_success');

      const listed = await live.api('get', `/api/orders/${no}/refunds`);
      expect(listed.status).toBe(200);
      expect(documented('get', '/api/orders/{order_no}/refunds')).toContain('200');
      expect(refundListSchema.safeParse(listed.body.data).success).toBe(true);
      (listed.body.data as Json[]).forEach((r, i) => expectShape(refundJsonSchema, r, `listed refund ${i}`));
      expect((listed.body.data as Json[]).map((r) => [r.refund_no, r.status])).toEqual([
        [`RF-${no}-3`, 'succeeded'],
        [`RF-${no}-2`, 'failed'],
        [`RF-${no}-1`, 'succeeded'],
      ]);
      const one = await live.api('get', `/api/refunds/RF-${no}-1`);
      expectShape(refundJsonSchema, one.body.data, 'one refund');
      expect(one.body.data).toMatchObject({ status: 'succeeded', completed_at: expect.any(String) });

      await live.waitForStatus(no, 'delivered');
      const detail = (await live.api('get', `/api/orders/${no}`)).body.data as Json & { refunds: Json[]; payments: Json[]; notifications: Json[] };
      expectShape(orderDetailSchema, detail, 'refunded order detail');
      expect(detail).toMatchObject({ status: 'refunded', refunded_amount: '10.00' });
      detail.refunds.forEach((r, i) => expectShape(refundJsonSchema, r, `detail refund ${i}`));
      detail.payments.forEach((p, i) => expectShape(paymentJsonSchema, p, `payment ${i}`));
      expect(detail.payments.map((p) => p.status)).toContain('refund_succeeded');
      detail.notifications.forEach((n, i) => expectShape(notificationJsonSchema, n, `notification ${i}`));
      expect(detail.notifications.map((n) => n.type)).toEqual(['order.paid', 'refund.failed', 'refund.succeeded', 'refund.succeeded']);
      const item = ((await live.api('get', `/api/orders?status=refunded&limit=100`)).body.data as { items: Json[] }).items.find((o) => o.order_no === no);
      expectShape(orderJsonSchema, item, 'refunded order in the list');

      expect((await refund(no, { amount: '1.00' }, 409)).code).toBe('invalid_state');
      expect((await live.api('get', `/api/refunds/RF-${no}-9`)).status).toBe(404);
      expect((await request(live.app).get(`/api/refunds/RF-${no}-1`)).status).toBe(401);
    });

    it('not_refundable: a gateway whose refund API is not configured', async () => {
      const no = `AL-${Date.now().toString(36)}-${engine}`;
      expect((await live.api('post', '/api/orders').send({ order_no: no, amount: '5.00', payment_method: 'alipay' })).status).toBe(201);
      await live.db.kysely
        .updateTable('orders')
        .set({ status: 'paid', transaction_id: `T-${no}` })
        .where('order_no', '=', no)
        .execute();
      const refused = await refund(no, { amount: '1.00' }, 409);
      expect(refused.code).toBe('not_refundable');
      expect(codesOf(doc, (paths['/api/orders/{order_no}/refunds']!.post!.responses as Record<string, Json>)['409']!)).toContain('not_refundable');
    });
  });
});
