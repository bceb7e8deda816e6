import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
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
import { ERROR_STATUS } from '../src/shared/errors.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { ENGINES } from './helpers/engines.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

type Json = Record<string, unknown>;

const OPERATIONS: Array<[string, string]> = [
  ['post', '/api/orders'],
  ['get', '/api/orders'],
  ['get', '/api/orders/{order_no}'],
  ['post', '/api/orders/{order_no}/close'],
  ['post', '/api/orders/{order_no}/notifications/resend'],
  ['get', '/query_order'],
  ['post', '/notify'],
  ['get', '/healthz'],
  ['get', '/readyz'],
  ['get', '/metrics'],
];

/** RFC 6901 JSON pointer inside the document (`#/components/schemas/Order`). */
function resolve(doc: Json, ref: string): unknown {
  expect(ref.startsWith('#/'), ref).toBe(true);
  return ref
    .slice(2)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((node, key) => (node && typeof node === 'object' ? (node as Json)[key] : undefined), doc);
}

function collectRefs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => collectRefs(n, out));
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') out.push(value);
      else collectRefs(value, out);
    }
  }
  return out;
}

/**
 * The value parses with the documented schema (so every required field is there, typed as documented) and
 * has no field the schema lacks: the document cannot drift from what the code answers.
 */
function expectShape(schema: z.ZodObject, value: unknown, what: string): void {
  const parsed = schema.safeParse(value);
  expect(parsed.success, `${what}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
  const undocumented = Object.keys(value as object).filter((key) => !(key in schema.shape));
  expect(undocumented, what).toEqual([]);
}

describe('GET /openapi.json', () => {
  let ctx: DeliveryContext;
  let doc: Json;
  beforeAll(async () => {
    ctx = await createDeliveryContext('sqlite');
    const res = await request(ctx.app).get('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    doc = res.body as Json;
  });
  afterAll(() => ctx?.close());

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
  });

  it('lists query parameters from the zod schemas, including the heritage action union', () => {
    const paths = doc.paths as Record<string, Record<string, Json>>;
    const list = paths['/api/orders']!.get!.parameters as Json[];
    expect(list.map((p) => p.name).sort()).toEqual(['cursor', 'from', 'limit', 'page', 'status', 'to']);
    expect(list.find((p) => p.name === 'status')).toMatchObject({ in: 'query', required: false, schema: { enum: ['pending', 'paid', 'failed', 'closed'] } });
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
    expectShape(errorEnvelopeSchema, first('Error'), 'Error example');
  });

  describe.each(ENGINES)('matches the real answers on %s', (engine) => {
    let live: DeliveryContext;
    let receiver: Receiver;
    beforeAll(async () => {
      live = engine === 'sqlite' ? ctx : await createDeliveryContext(engine);
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
