import { randomBytes } from 'node:crypto';
import type { BenchRequest, LoadOptions } from './load.ts';
import { notifyScenario, type NotifyOrders } from './notify.ts';

/** What all three servers (ours, both yardsticks) serve: order creation, the status lookup and the signed gateway notification. */

export const SCENARIOS = ['create_order', 'query_status', 'notify'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export type Scenario = Pick<LoadOptions, 'next' | 'check' | 'onOk'>;

/** Order numbers made by one implementation's create runs (warm-up included), for the lookups. */
export class OrderBook {
  readonly orderNos: string[] = [];
  private counter = 0;
  private readonly prefix: string;

  constructor(tag: string) {
    // Unique per run and per implementation: `b` + 8 random alphanumerics + tag + base-36 counter.
    this.prefix = `b${randomBytes(6).toString('base64url').replace(/[-_]/g, 'x')}${tag}`;
  }

  nextOrderNo(): string {
    return this.prefix + (this.counter++).toString(36);
  }
}

function jsonHeaders(apiKey: string): Record<string, string> {
  return { 'content-type': 'application/json', 'x-api-key': apiKey };
}

/** POST /api/orders with a fresh order_no each time; a 201 with that order_no in the body counts. */
export function createOrderScenario(book: OrderBook, apiKey: string): Scenario {
  const headers = jsonHeaders(apiKey);
  const orderNoOf = new WeakMap<BenchRequest, string>();
  return {
    next: () => {
      const orderNo = book.nextOrderNo();
      const req: BenchRequest = {
        method: 'POST',
        path: '/api/orders',
        headers,
        body: JSON.stringify({ order_no: orderNo, amount: '12.34', currency: 'CNY' }),
      };
      orderNoOf.set(req, orderNo);
      return req;
    },
    check: (req, status, body) => {
      if (status !== 201) return `unexpected_status_${status}`;
      return body.includes(`"order_no":"${orderNoOf.get(req)}"`) ? null : 'unexpected_body';
    },
    onOk: (req) => {
      const orderNo = orderNoOf.get(req);
      if (orderNo) book.orderNos.push(orderNo);
    },
  };
}

/**
 * GET /query_order?action=status&order_no=<random created order>; the yardsticks ignore `action`
 * and the key, so all three receive byte-identical requests. The answer must name the order as pending.
 */
export function queryStatusScenario(book: OrderBook, apiKey: string): Scenario {
  const headers = { 'x-api-key': apiKey };
  const orderNoOf = new WeakMap<BenchRequest, string>();
  return {
    next: () => {
      const orderNo = book.orderNos[Math.floor(Math.random() * book.orderNos.length)] ?? 'missing';
      const req: BenchRequest = { method: 'GET', path: `/query_order?action=status&order_no=${orderNo}`, headers };
      orderNoOf.set(req, orderNo);
      return req;
    },
    check: (req, _status, body) => {
      const orderNo = orderNoOf.get(req);
      if (!body.includes(`"order_no":"${orderNo}"`)) return 'unexpected_body';
      return body.includes('"status":"pending"') ? null : 'unexpected_status_field';
    },
  };
}

export interface ScenarioContext {
  book: OrderBook;
  apiKey: string;
  notifyOrders: NotifyOrders;
  gatewaySecret: string;
}

export function scenarioFor(name: ScenarioName, ctx: ScenarioContext): Scenario {
  switch (name) {
    case 'create_order':
      return createOrderScenario(ctx.book, ctx.apiKey);
    case 'query_status':
      return queryStatusScenario(ctx.book, ctx.apiKey);
    case 'notify':
      return notifyScenario(ctx.notifyOrders, ctx.gatewaySecret);
  }
}
