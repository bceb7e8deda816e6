import type { AppConfig } from '../config.ts';
import type { Database } from '../db/database.ts';
import { attemptDelivery, createDeliveryAgent, type AttemptTrace, type DeliverySettings } from '../notifications/delivery.ts';
import { eventBody } from '../orders/order-event.ts';
import { findOrderByNo } from '../orders/order.repository.ts';
import { httpUrl } from '../orders/order.schema.ts';
import { NotFoundError } from '../shared/errors.ts';
import type { Clock } from '../shared/time.ts';
import { findAudit, recordAuditWithId } from '../audit/audit.repository.ts';
import type { ConsoleActor } from './orders.service.ts';

export const TEST_ACTION = 'order.test_notification';

/** One test notification as sent and answered, stored as the audit entry's new value. */
export interface TestExchange {
  url: string;
  event_id: string;
  sent_at: string;
  request: { method: 'POST'; headers: Array<[string, string]>; body: string } | null;
  response: { headers: Array<[string, string]>; body: string } | null;
  status_code: number | null;
  /** What the delivery loop would have made of this answer, and why. */
  outcome: 'delivered' | 'failed' | 'abandoned';
  reason: string | null;
  error: string | null;
  duration_ms: number;
  private_target: boolean;
}

const MAX_HEADERS = 50;
const MAX_HEADER_VALUE = 512;

/** The answer's headers as received, bounded: the audit entry must stay small whatever a receiver sends. */
function responseHeaders(headers: AttemptTrace['responseHeaders']): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(headers ?? {})) {
    for (const one of ([] as Array<string | undefined>).concat(value)) {
      if (one !== undefined && out.length < MAX_HEADERS) out.push([name, one.slice(0, MAX_HEADER_VALUE)]);
    }
  }
  return out;
}

export type TestOutcome = { sent: number } | { refused: 'test_url_invalid' | 'test_no_target' };

/**
 * The console's "send a test notification": an A7 body of type `test` with a fresh event id and the order's
 * current fields, signed and sent exactly as deliveries are (attemptDelivery: NOTIFY_SECRET, Standard Webhooks
 * headers, the address guard, no redirects, NOTIFY_TIMEOUT_MS), to the order's notify_url or a URL the operator
 * gives. It writes no outbox row and changes no order; the exchange is kept in the audit log.
 */
export function createTestNotifications(deps: { db: Database; clock: Clock; config: Pick<AppConfig, 'notify' | 'secrets'> }) {
  const settings: DeliverySettings = {
    secret: deps.config.secrets.NOTIFY_SECRET,
    signType: deps.config.notify.signType,
    timeoutMs: deps.config.notify.timeoutMs,
    expectBody: deps.config.notify.expectBody,
    allowPrivateNetworks: deps.config.notify.allowPrivateNetworks,
  };

  async function send(orderNo: string, givenUrl: string | undefined, actor: ConsoleActor): Promise<TestOutcome> {
    const order = await findOrderByNo(deps.db.kysely, orderNo);
    if (!order) throw new NotFoundError(`Order ${orderNo} not found`);
    const url = givenUrl === undefined || givenUrl.trim() === '' ? order.notify_url : givenUrl.trim();
    if (!url) return { refused: 'test_no_target' };
    if (!httpUrl.safeParse(url).success) return { refused: 'test_url_invalid' };

    const event = eventBody(order, 'test', order.seq);
    const now = deps.clock();
    const trace: AttemptTrace = {};
    // Its own connection pool, closed at once: nothing of the delivery loop's is shared or kept open.
    const agent = createDeliveryAgent(settings);
    let result;
    try {
      result = await attemptDelivery(url, JSON.stringify(event), settings, agent, now, trace);
    } finally {
      await agent.destroy();
    }
    const target = new URL(url);
    const sentHeaders: Array<[string, string]> = trace.request
      ? [['host', target.host], ['content-length', String(Buffer.byteLength(trace.request.body))], ...Object.entries(trace.request.headers)]
      : [];
    const exchange: TestExchange = {
      url,
      event_id: event.event_id,
      sent_at: now.toISOString(),
      request: trace.request ? { method: 'POST', headers: sentHeaders, body: trace.request.body } : null,
      response: result.statusCode === null ? null : { headers: responseHeaders(trace.responseHeaders), body: result.excerpt ?? '' },
      status_code: result.statusCode,
      outcome: result.verdict.kind,
      reason: result.verdict.kind === 'delivered' ? null : result.verdict.reason,
      error: result.error,
      duration_ms: result.durationMs,
      private_target: result.privateTarget === true,
    };
    const id = await recordAuditWithId(deps.db.kysely, {
      actor: actor.operator,
      action: TEST_ACTION,
      target: `order:${orderNo}`,
      newValue: exchange,
      remoteIp: actor.remoteIp,
      now,
    });
    return { sent: id };
  }

  /** A test exchange of this order kept in the audit log, or null (another order's, not a test, or gone). */
  async function find(orderNo: string, id: number): Promise<(TestExchange & { actor: string }) | null> {
    const row = await findAudit(deps.db.kysely, id);
    if (!row || row.action !== TEST_ACTION || row.target !== `order:${orderNo}` || !row.new_value) return null;
    return { ...(JSON.parse(row.new_value) as TestExchange), actor: row.actor };
  }

  return { send, find };
}

export type TestNotifications = ReturnType<typeof createTestNotifications>;
