import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Database } from '../db/database.ts';
import { createLeasedLoop } from '../shared/leased-loop.ts';
import type { Logger } from '../shared/logger.ts';
import { fromDbTime, type Clock } from '../shared/time.ts';
import { claimDueOrders, finishCheck, releaseLeases, type DueOrder } from './reconcile.repository.ts';
import { nextCheck, type NextCheck } from './reconcile.schedule.ts';
import type { ReconcileService } from './reconcile.service.ts';

export interface ReconcilerOptions {
  concurrency: number;
  pollIntervalMs: number;
  /** One gateway call's limit; a look makes at most three (query, close, query again). */
  timeoutMs: number;
  scheduleMs: readonly number[];
}

/**
 * The in-process reconcile loop (a leased loop): every poll it leases the pending orders whose look is due
 * (several instances on one database never lease the same order), asks their gateways with bounded concurrency,
 * and records when to look next. A crash leaves the lease to run out: the order is simply due again.
 */
export function createReconciler(deps: { db: Database; service: ReconcileService; clock: Clock; logger: Logger; options: ReconcilerOptions }) {
  const { db, service, clock, logger, options } = deps;
  const owner = `${hostname().slice(0, 32)}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const leaseMs = options.timeoutMs * 3 + 5_000;

  async function look(order: DueOrder, signal: AbortSignal): Promise<void> {
    const now = clock();
    const expiresAt = order.expires_at ? fromDbTime(order.expires_at) : null;
    const trigger = expiresAt && expiresAt.getTime() <= now.getTime() ? 'expiry' : 'schedule';
    let next: NextCheck | null = null;
    try {
      const result = await service.check(order, trigger, signal);
      // A mismatch waits for an operator; an order whose gateway cannot be asked is next looked at at its expiry.
      if (result.stop) next = { at: null, step: order.reconcile_step };
      else if (result.outcome === 'not_queryable') next = { at: expiresAt, step: order.reconcile_step };
    } catch (err) {
      logger.warn({ err, orderNo: order.order_no }, 'reconcile: the look failed (storage?); asked again at the next step');
    }
    // Otherwise the schedule's next step (or the expiry); finishCheck clears it for an order no longer pending.
    next ??= nextCheck(order.reconcile_step, options.scheduleMs, clock(), expiresAt);
    const kept = await finishCheck(db.kysely, order.order_no, owner, next).catch((err: unknown) => {
      logger.warn({ err, orderNo: order.order_no }, 'reconcile: the next look could not be recorded; the lease runs out and it is asked again');
      return true;
    });
    if (!kept) logger.warn({ orderNo: order.order_no }, 'reconcile: the lease ran out during the look; another instance owns the order now');
  }

  const loop = createLeasedLoop<DueOrder>({
    concurrency: options.concurrency,
    pollIntervalMs: options.pollIntervalMs,
    leaseMs,
    claim: (limit) => claimDueOrders(db, owner, limit, leaseMs, clock()),
    keyOf: (order) => order.order_no,
    work: look,
    async release() {
      const released = await releaseLeases(db.kysely, owner, clock());
      logger.warn({ released }, 'reconcile: stopped with looks in flight; their orders are due again');
      return released;
    },
    onError: (err, during) => logger.warn({ err }, `reconcile: ${during} failed; retrying at the next poll`),
  });
  return { owner, ...loop };
}

export type Reconciler = ReturnType<typeof createReconciler>;
