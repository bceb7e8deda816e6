import { z } from 'zod';
import type { Database, Executor } from '../db/database.ts';
import type { NotificationService } from '../notifications/notification.service.ts';
import { findOrderByNo } from '../orders/order.repository.ts';
import { listOrdersSchema, orderNoSchema, timeWindow } from '../orders/order.schema.ts';
import type { OrderService } from '../orders/order.service.ts';
import { countRejectedCallbacksForOrder } from '../orders/order-history.repository.ts';
import { toOrderJson } from '../orders/order.view.ts';
import { canClose } from '../orders/order-transitions.ts';
import { AppError, NotFoundError } from '../shared/errors.ts';
import { formatAmount } from '../shared/money.ts';
import type { Clock } from '../shared/time.ts';
import { auditForTarget, recordAudit } from '../audit/audit.repository.ts';
import { listReconcileAttempts } from '../reconcile/reconcile.repository.ts';
import type { ReconcileService } from '../reconcile/reconcile.service.ts';
import { listRefundsOfOrder } from '../orders/refund.repository.ts';
import type { RefundService } from '../refunds/refund.service.ts';
import { auditedRefund, refundFacts } from './order-refund.service.ts';
import { prettyPayload, verifiedFields } from './format.ts';
import { countSearch, eventsOfOrder, paymentLogsOfOrder, rejectedCallbacksOfOrder, searchOrders } from './order-timeline.repository.ts';

export const PAGE_SIZE = 25;
/** Looks at the gateway shown on the order timeline (the newest). */
export const ATTEMPTS_SHOWN = 200;

/** `?rejected_page=` of the order page: a page number, 1 when absent or not one. */
const rejectedPageOf = (value: unknown) => (typeof value === 'string' && /^\d{1,6}$/.test(value) && Number(value) > 0 ? Number(value) : 1);

const blank = (v: unknown) => (v === '' ? undefined : v);
const listQuery = listOrdersSchema
  .pick({ status: true, from: true, to: true, page: true })
  .extend({ q: orderNoSchema.optional() })
  .superRefine(timeWindow('from', 'to'));
const cleaned = (query: Record<string, unknown>) =>
  Object.fromEntries(['q', 'status', 'from', 'to', 'page'].map((k) => [k, blank(typeof query[k] === 'string' ? (query[k] as string).trim() : undefined)]));

export interface ConsoleActor {
  operator: string;
  remoteIp: string | null;
}

/** The console's order list, order timeline and operator actions (each action audit-logged). */
export function createConsoleOrders(deps: {
  db: Database;
  readDb: Database;
  clock: Clock;
  orders: OrderService;
  notifications: NotificationService;
  reconcile: Pick<ReconcileService, 'isQueryable'>;
  refunds: Pick<RefundService, 'isRefundable'>;
}) {
  /** Filters as typed in the form; invalid ones are reported back on the page, not as an error page. */
  async function list(query: Record<string, unknown>) {
    const form = cleaned(query);
    const parsed = listQuery.safeParse(form);
    if (!parsed.success) return { form, errors: parsed.error.issues.map((i) => String(i.path[0] ?? '')), items: [], total: 0, page: 1, pages: 1 };
    const { q, status, from, to } = parsed.data;
    const page = parsed.data.page;
    const offset = (page - 1) * PAGE_SIZE;
    let items;
    let total;
    if (q) {
      const filter = { status, from, to };
      const [rows, count] = await Promise.all([searchOrders(deps.readDb.kysely, q, filter, PAGE_SIZE, offset), countSearch(deps.readDb.kysely, q, filter)]);
      items = rows.map(toOrderJson);
      total = count;
    } else {
      ({ items, total } = await deps.orders.list({ status, from, to, page, limit: PAGE_SIZE }));
    }
    return { form, errors: [] as string[], items, total, page, pages: Math.max(1, Math.ceil(total / PAGE_SIZE)) };
  }

  /**
   * The order and its history merged into one chronological timeline, and apart from it one page of the
   * requests refused before verification. Reads the primary: it follows operator actions.
   */
  async function detail(orderNo: string, query: Record<string, unknown> = {}) {
    const db = deps.db.kysely;
    const row = await findOrderByNo(db, orderNo);
    if (!row) throw new NotFoundError(`Order ${orderNo} not found`);
    const [payments, events, audit, rejectedTotal, looks, refunds] = await Promise.all([
      paymentLogsOfOrder(db, orderNo),
      eventsOfOrder(db, orderNo),
      auditForTarget(db, `order:${orderNo}`),
      countRejectedCallbacksForOrder(db, orderNo),
      listReconcileAttempts(db, orderNo, ATTEMPTS_SHOWN),
      listRefundsOfOrder(db, orderNo),
    ]);
    const pages = Math.max(1, Math.ceil(rejectedTotal / PAGE_SIZE));
    const page = Math.min(rejectedPageOf(query.rejected_page), pages);
    const rejected = rejectedTotal === 0 ? [] : await rejectedCallbacksOfOrder(db, orderNo, PAGE_SIZE, (page - 1) * PAGE_SIZE);
    // Equal times: a refund request before its sending, a look at the gateway before the payment it found and the event that followed; looks oldest first.
    const timeline = [
      { at: row.created_at, rank: 0, kind: 'created' as const },
      ...looks.toReversed().map((a) => ({ at: a.created_at, rank: 1, kind: 'reconcile' as const, attempt: a, answer: prettyPayload(a.answer) })),
      ...payments.map((p) => ({
        at: p.created_at,
        rank: 2,
        kind: 'payment' as const,
        entry: p,
        amount: p.amount_minor === null || p.currency === null ? null : formatAmount(Number(p.amount_minor), p.currency),
        request: prettyPayload(p.callback_data),
        verified: verifiedFields(p.payment_data),
        /** A refund notification or answer (status refund_*), labelled as a refund rather than a payment. */
        refund: p.status?.startsWith('refund_') === true,
      })),
      ...events.map((e) => ({ at: e.created_at, rank: 3, kind: 'event' as const, event: e, payload: prettyPayload(e.payload) })),
      ...audit.map((a) => {
        const refund = a.action === 'order.refund' ? auditedRefund(a.new_value) : null;
        return { at: a.created_at, rank: refund ? 0.5 : 4, kind: 'audit' as const, audit: a, refund };
      }),
    ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.rank - b.rank));
    return {
      order: toOrderJson(row),
      flagged: row.flagged === 1,
      timeline,
      counts: {
        payments: payments.length,
        events: events.length,
        attempts: events.reduce((s, e) => s + e.attemptRows.length, 0),
        looks: looks.length,
        looksCapped: looks.length === ATTEMPTS_SHOWN,
      },
      rejected: {
        total: rejectedTotal,
        page,
        pages,
        items: rejected.map((r) => ({ entry: r, request: prettyPayload(r.callback_data), kept: Buffer.byteLength(r.callback_data) })),
      },
      canClose: canClose(row.status),
      canResend: events.length > 0,
      /** "Ask the gateway now": only where the order's gateway has a configured query API. */
      canSync: deps.reconcile.isQueryable(row.payment_method),
      refunds: refundFacts(row, refunds, deps.refunds.isRefundable(row.payment_method), deps.clock()),
    };
  }

  /** Runs an order action; a refused one (wrong state, nothing to resend) becomes a flash key instead of an error page. */
  async function act(kind: 'close' | 'resend', orderNo: string, actor: ConsoleActor): Promise<'closed' | 'close_refused' | 'resent' | 'resend_refused'> {
    const before = await findOrderByNo(deps.db.kysely, orderNo);
    if (!before) throw new NotFoundError(`Order ${orderNo} not found`);
    // The audit row is written in the action's own transaction: no change without its record, nor the reverse.
    const audit = (trx: Executor, oldValue: unknown, newValue: unknown) =>
      recordAudit(trx, {
        actor: actor.operator,
        action: `order.${kind}`,
        target: `order:${orderNo}`,
        oldValue,
        newValue,
        remoteIp: actor.remoteIp,
        now: deps.clock(),
      });
    try {
      if (kind === 'close') await deps.orders.close(orderNo, (trx, from) => audit(trx, { status: from }, { status: 'closed' }));
      else await deps.notifications.resend(orderNo, (trx, resent) => audit(trx, null, resent));
      return kind === 'close' ? 'closed' : 'resent';
    } catch (err) {
      if (err instanceof AppError && err.code === 'invalid_state') return kind === 'close' ? 'close_refused' : 'resend_refused';
      throw err;
    }
  }

  return { list, detail, act };
}

export type ConsoleOrders = ReturnType<typeof createConsoleOrders>;
export const orderNoParam = z.object({ order_no: orderNoSchema });
