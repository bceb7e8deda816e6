import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrderSchema, genericNotifySchema, orderNoSchema } from '../src/openapi/request.schemas.ts';
import {
  attemptJsonSchema,
  errorEnvelopeSchema,
  healthSchema,
  notificationJsonSchema,
  orderDetailSchema,
  orderJsonSchema,
  orderListSchema,
  orderStatusSchema,
  paymentJsonSchema,
  readySchema,
  resendResultSchema,
} from '../src/openapi/response.schemas.ts';
import { orderSyncSchema, reconcileResultSchema } from '../src/openapi/sync.schemas.ts';
import { ERROR_STATUS } from '../src/shared/errors.ts';
import { toDbTime } from '../src/shared/time.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { ENGINES } from './helpers/engines.ts';
import { collectRefs, expectShape, resolve, type Json } from './helpers/openapi.ts';
import { uid } from './helpers/pages.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

const OPERATIONS: Array<[string, string]> = [
  ['post', '/api/orders'],
  ['get', '/api/orders'],
  ['get', '/api/orders/{order_no}'],
  ['post', '/api/orders/{order_no}/close'],
  ['post', '/api/orders/{order_no}/sync'],
  ['post', '/api/orders/{order_no}/notifications/resend'],
  ['post', '/api/orders/{order_no}/refunds'],
  ['get', '/api/orders/{order_no}/refunds'],
  ['get', '/api/refunds/{refund_no}'],
  ['get', '/query_order'],
  ['post', '/notify'],
  ['get', '/healthz'],
  ['get', '/readyz'],
  ['get', '/metrics'],
];

/** A generic gateway query API that is down: every question to it answers 503, so a sync of a generic order is a gateway_error. */
async function startDownGateway(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => res.writeHead(503, { 'content-type': 'text/plain' }).end('down for maintenance'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/query`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('GET /openapi.json', () => {
  let ctx: DeliveryContext;
  let doc: Json;
  let downGateway: Awaited<ReturnType<typeof startDownGateway>>;
  beforeAll(async () => {
    downGateway = await startDownGateway();
    ctx = await createDeliveryContext('sqlite', { GENERIC_QUERY_URL: downGateway.url });
    const res = await request(ctx.app).get('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    doc = res.body as Json;
  });
  afterAll(async () => {
    await ctx?.close();
    await downGateway?.close();
  });

  it('is an OpenAPI 3.1 document covering every JSON endpoint', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    const paths = doc.paths as Record<string, Record<string, Json>>;
    const ids = new Set<string>();
    for (const [method, path] of OPERATIONS) {
      const op = paths[path]?.[method];
      expect(op, `${method.toUpperCase()} ${path}`).toBeDefined();
      expect(op!.operationId).toEqual(expect.any(String));
      expect(ids.has(op!.operationId as string), `duplicate operationId ${String(op!.operationId)}`).toBe(false);
      ids.add(op!.operationId as string);
      const responses = op!.responses as Record<string, Json>;
      expect(Object.keys(responses).length).toBeGreaterThan(0);
      for (const [status, response] of Object.entries(responses)) {
        expect(status).toMatch(/^[1-5]\d\d$/);
        expect(typeof response.$ref === 'string' || typeof response.description === 'string', `${path} ${status}`).toBe(true);
      }
      // Every {template} of the path is a required path parameter.
      const params = (op!.parameters ?? []) as Json[];
      for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
        expect(
          params.find((p) => p.in === 'path' && p.name === name),
          `${path} {${name}}`,
        ).toMatchObject({ required: true });
      }
      for (const p of params) expect(['query', 'path', 'header', 'cookie']).toContain(p.in);
    }
  });

  it('resolves every $ref and names only defined security schemes', () => {
    const refs = collectRefs(doc);
    expect(refs.length).toBeGreaterThan(20);
    for (const ref of refs) expect(resolve(doc, ref), ref).toBeDefined();
    const components = doc.components as Record<string, Json>;
    for (const name of Object.keys(components.schemas!)) expect(name).toMatch(/^[a-zA-Z0-9._-]+$/);
    const schemes = components.securitySchemes as Record<string, Json>;
    expect(schemes.ApiKey).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-API-Key' });
    expect(schemes.BearerApiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const op of Object.values(doc.paths as Record<string, Record<string, Json>>).flatMap((item) => Object.values(item))) {
      for (const requirement of (op.security ?? []) as Json[]) {
        for (const name of Object.keys(requirement)) expect(schemes[name], name).toBeDefined();
      }
    }
    expect((doc.paths as Record<string, Record<string, Json>>)['/api/orders']!.get!.security).toEqual([{ ApiKey: [] }, { BearerApiKey: [] }]);
  });

  it('describes POST /api/orders from the zod schema: amount required, currency pattern and default, JSON and form', () => {
    const post = (doc.paths as Record<string, Record<string, Json>>)['/api/orders']!.post!;
    const content = (post.requestBody as Json).content as Record<string, { schema: Json }>;
    const body = resolve(doc, content['application/json']!.schema.$ref as string) as Json;
    expect(body.required).toEqual(['amount']);
    const props = body.properties as Record<string, Json>;
    expect(props.currency).toMatchObject({ type: 'string', pattern: '^[A-Z]{3}$', default: 'CNY' });
    expect(props.order_no).toMatchObject({ type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' });
    expect(orderNoSchema.safeParse('ORD-1001').success).toBe(true);
    expect(props.payment_method).toMatchObject({ enum: ['generic', 'sandbox', 'alipay', 'wechatpay', 'stripe'] });
    expect(props.subject).toMatchObject({ maxLength: 256 });
    expect(props.metadata).toMatchObject({ type: 'object' });
    const form = resolve(doc, content['application/x-www-form-urlencoded']!.schema.$ref as string) as Json;
    expect(Object.keys(form.properties as Json)).not.toContain('metadata');
    expect(form.required).toEqual(['amount']);
    // The order's lifetime: seconds from now, or a time; the default ORDER_TTL applies without either.
    for (const schema of [props, form.properties as Record<string, Json>]) {
      expect(schema.expires_in).toMatchObject({ type: 'integer', minimum: 60, maximum: 604800, description: expect.stringContaining('ORDER_TTL') });
      expect(schema.expires_at).toMatchObject({ type: 'string', format: 'date-time', description: expect.stringContaining('expires_in') });
    }
  });

  it('describes POST /api/orders/{order_no}/sync: the order with what the gateway said, and every failure', () => {
    const post = (doc.paths as Record<string, Record<string, Json>>)['/api/orders/{order_no}/sync']!.post!;
    expect(post.security).toEqual([{ ApiKey: [] }, { BearerApiKey: [] }]);
    expect(post.requestBody).toBeUndefined();
    const responses = post.responses as Record<string, Json>;
    expect(Object.keys(responses).sort()).toEqual(['200', '400', '401', '403', '404', '409', '429', '500', '502', '503']);
    expect(responses['502']).toEqual({ $ref: '#/components/responses/Error502' });
    const errors = (status: string) =>
      Object.keys((((resolve(doc, responses[status]!.$ref as string) as Json).content as Json)['application/json'] as Json).examples as Json);
    expect(errors('409')).toContain('not_queryable');
    expect(errors('502')).toEqual(['gateway_error']);
    const envelope = resolve(doc, (((responses['200']!.content as Json)['application/json'] as Json).schema as Json).$ref as string) as Json;
    const data = resolve(doc, (envelope.properties as Record<string, Json>).data!.$ref as string) as Json;
    expect(data.required).toEqual(expect.arrayContaining(['order_no', 'status', 'expires_at', 'reconcile']));
    const reconcile = resolve(doc, (data.properties as Record<string, Json>).reconcile!.$ref as string) as Json;
    expect(reconcile.required).toEqual(['gateway', 'gateway_state', 'outcome', 'message']);
    const props = reconcile.properties as Record<string, Json>;
    expect(props.outcome!.enum).toEqual(['recovered', 'already_paid', 'unchanged', 'closed', 'mismatch']);
    expect(props.gateway_state).toMatchObject({ type: 'string', enum: ['paid', 'pending', 'failed', 'closed', 'not_found'] });
    expect(props.gateway).toMatchObject({ enum: ['generic', 'sandbox', 'alipay', 'wechatpay', 'stripe'] });
  });

  it('lists query parameters from the zod schemas, including the heritage action union', () => {
    const paths = doc.paths as Record<string, Record<string, Json>>;
    const list = paths['/api/orders']!.get!.parameters as Json[];
    expect(list.map((p) => p.name).sort()).toEqual(['cursor', 'from', 'limit', 'page', 'status', 'to']);
    expect(list.find((p) => p.name === 'status')).toMatchObject({
      in: 'query',
      required: false,
      schema: { enum: ['pending', 'paid', 'failed', 'closed', 'refunded'] },
    });
    const query = paths['/query_order']!.get!.parameters as Json[];
    expect(query.find((p) => p.name === 'action')).toMatchObject({ required: true, schema: { enum: ['status', 'detail', 'list'] } });
    expect(query.find((p) => p.name === 'order_no')).toMatchObject({ required: false });
    expect(query.map((p) => p.name)).toEqual(expect.arrayContaining(['start_time', 'end_time', 'page', 'limit', 'cursor', 'status']));
  });

  it('documents the error envelope with every stable code, and per status', () => {
    const components = doc.components as Record<string, Record<string, Json>>;
    const error = components.schemas!.Error!;
    expect((error.properties as Record<string, Json>).code!.enum).toEqual(Object.keys(ERROR_STATUS));
    expect(error.required).toEqual(['success', 'code', 'message']);
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      const response = components.responses![`Error${status}`] as Json;
      expect(response, `Error${status}`).toBeDefined();
      const examples = ((response.content as Json)['application/json'] as Json).examples as Record<string, { value: unknown }>;
      expect(examples[code]!.value).toMatchObject({ success: false, code });
      expectShape(errorEnvelopeSchema, examples[code]!.value, `example ${code}`);
    }
  });

  it('has examples that the schemas accept', () => {
    const schemas = (doc.components as Record<string, Record<string, Json>>).schemas!;
    const first = (id: string) => (schemas[id]!.examples as unknown[])[0];
    expect(createOrderSchema.safeParse(first('CreateOrderRequest')).success).toBe(true);
    expect(genericNotifySchema.safeParse(first('GenericNotifyParams')).success).toBe(true);
    expectShape(orderJsonSchema, first('Order'), 'Order example');
    expectShape(orderSyncSchema, (first('OrderSyncResponse') as { data: unknown }).data, 'OrderSyncResponse example');
    expectShape(errorEnvelopeSchema, first('Error'), 'Error example');
  });

  describe.each(ENGINES)('matches the real answers on %s', (engine) => {
    let live: DeliveryContext;
    let receiver: Receiver;
    beforeAll(async () => {
      live = engine === 'sqlite' ? ctx : await createDeliveryContext(engine, { GENERIC_QUERY_URL: downGateway.url });
      receiver = await startReceiver();
    });
    afterAll(async () => {
      await receiver?.close();
      if (live !== ctx) await live?.close();
    });

    it('orders, details with payments, notifications and attempts, lists, status, resend, health', async () => {
      const orderNo = await live.paidOrder(receiver.url, '12.34');
      await live.waitForStatus(orderNo, 'delivered');

      const detail = await live.api('get', `/api/orders/${orderNo}`);
      expect(Object.keys(detail.body).sort()).toEqual(['data', 'message', 'success']);
      expectShape(orderDetailSchema, detail.body.data, 'order detail');
      const data = detail.body.data as { payments: unknown[]; notifications: Array<{ attempts: unknown[] }> };
      expect(data.payments.length).toBeGreaterThan(0);
      data.payments.forEach((p, i) => expectShape(paymentJsonSchema, p, `payment ${i}`));
      expect(data.notifications.length).toBeGreaterThan(0);
      data.notifications.forEach((n, i) => expectShape(notificationJsonSchema, n, `notification ${i}`));
      expect(data.notifications[0]!.attempts.length).toBeGreaterThan(0);
      data.notifications[0]!.attempts.forEach((a, i) => expectShape(attemptJsonSchema, a, `attempt ${i}`));

      const list = await live.api('get', '/api/orders?limit=2');
      expectShape(orderListSchema, list.body.data, 'order list');
      (list.body.data as { items: unknown[] }).items.forEach((o, i) => expectShape(orderJsonSchema, o, `item ${i}`));
      expectShape(orderStatusSchema, (await live.api('get', `/query_order?action=status&order_no=${orderNo}`)).body.data, 'status');

      const resend = await live.api('post', `/api/orders/${orderNo}/notifications/resend`);
      expect(resend.status).toBe(202);
      expectShape(resendResultSchema, resend.body.data, 'resend');

      const created = await live.api('post', '/api/orders').send({ amount: '1.50', currency: 'USD' });
      expectShape(orderJsonSchema, created.body.data, 'created order');
      expectShape(errorEnvelopeSchema, (await live.api('post', '/api/orders').send({ amount: '1.234' })).body, 'validation error');
      expectShape(healthSchema, (await request(live.app).get('/healthz')).body.data, 'healthz');
      expectShape(readySchema, (await request(live.app).get('/readyz')).body.data, 'readyz');
    });

    it('sync: 200 with the order and what the gateway said (payments of kind query included); 404, 409, 502 and 401 as documented', async () => {
      const documented = Object.keys((doc.paths as Record<string, Record<string, Json>>)['/api/orders/{order_no}/sync']!.post!.responses as Json);
      const sync = async (orderNo: string, status: number, withKey = true) => {
        const res = withKey ? await live.api('post', `/api/orders/${orderNo}/sync`) : await request(live.app).post(`/api/orders/${orderNo}/sync`);
        expect(res.status, JSON.stringify(res.body)).toBe(status);
        expect(documented).toContain(String(status));
        if (status === 200) {
          expectShape(orderSyncSchema, res.body.data, 'synced order');
          expectShape(reconcileResultSchema, res.body.data.reconcile, 'reconcile');
        } else expectShape(errorEnvelopeSchema, res.body, `sync ${status}`);
        return res.body as { data: Json & { reconcile: Json }; code?: string };
      };
      const create = async (fields: Json) => {
        const order_no = uid('SY');
        expect((await live.api('post', '/api/orders').send({ order_no, amount: '7.25', ...fields })).status).toBe(201);
        return order_no;
      };

      // Paid at the sandbox gateway, its notification lost: the sync finds the payment.
      const lost = await create({ payment_method: 'sandbox' });
      await live.db.kysely
        .insertInto('sandbox_payments')
        .values({
          order_no: lost,
          transaction_id: `SBX-${lost}`,
          status: 'success',
          amount_minor: 725,
          currency: 'CNY',
          notification_lost: 1,
          created_at: toDbTime(new Date()),
        })
        .execute();
      const recovered = await sync(lost, 200);
      expect(recovered.data).toMatchObject({ order_no: lost, status: 'paid', transaction_id: `SBX-${lost}` });
      expect(recovered.data.reconcile).toMatchObject({ gateway: 'sandbox', gateway_state: 'paid', outcome: 'recovered' });
      const payments = (await live.api('get', `/api/orders/${lost}`)).body.data.payments as Json[];
      expect(payments.map((p) => `${String(p.gateway)}/${String(p.kind)}/${String(p.verdict)}`)).toEqual(['sandbox/query/applied']);
      payments.forEach((p, i) => expectShape(paymentJsonSchema, p, `payment ${i}`));
      expect((await sync(lost, 200)).data.reconcile).toMatchObject({ gateway_state: 'paid', outcome: 'already_paid' });

      const unpaid = await create({ payment_method: 'sandbox' });
      const asked = await sync(unpaid, 200);
      expect(asked.data).toMatchObject({ status: 'pending', reconcile: { gateway: 'sandbox', gateway_state: 'pending', outcome: 'unchanged' } });

      expect((await sync(await create({ payment_method: 'alipay' }), 409)).code).toBe('not_queryable');
      expect((await sync(await create({}), 502)).code).toBe('gateway_error');
      expect((await sync(uid('NONE'), 404)).code).toBe('not_found');
      expect((await sync(unpaid, 401, false)).code).toBe('unauthorized');
    });
  });
});

describe('GET /docs', () => {
  let ctx: DeliveryContext;
  beforeAll(async () => {
    ctx = await createDeliveryContext('sqlite');
  });
  afterAll(() => ctx?.close());

  it('renders the document as HTML: every endpoint and schema, local assets only, CSP intact', async () => {
    const res = await request(ctx.app).get('/docs').set('Accept-Language', 'en');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    const csp = res.headers['content-security-policy'] as string;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    const html = res.text;
    for (const [method, path] of OPERATIONS) expect(html, `${method} ${path}`).toContain(`data-operation="${method.toUpperCase()} ${path}"`);
    const doc = (await request(ctx.app).get('/openapi.json')).body as { components: { schemas: Json } };
    for (const name of Object.keys(doc.components.schemas)) expect(html, name).toContain(`id="schema-${name}"`);
    for (const code of Object.keys(ERROR_STATUS)) expect(html).toContain(`data-error-code="${code}"`);
    expect(html).toContain('data-field="amount"');
    expect(html).toContain('^[A-Z]{3}$');
    // No inline script or style, nothing loaded from another origin.
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/\sstyle=/i);
    expect(html).not.toMatch(/<style/i);
    for (const [, url] of html.matchAll(/<(?:link|img|script)[^>]+(?:href|src)="([^"]+)"/g)) expect(url).toMatch(/^\//);
  });

  it('speaks Chinese when asked', async () => {
    const res = await request(ctx.app).get('/docs?lang=zh-CN');
    expect(res.status).toBe(200);
    expect(res.text).toContain('<html lang="zh-CN">');
    expect(res.text).toContain('API 参考');
  });
});
