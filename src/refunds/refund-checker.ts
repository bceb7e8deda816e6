import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Database } from '../db/database.ts';
import { findOrderByNo } from '../orders/order.repository.ts';
import type { RefundRow } from '../orders/refund.repository.ts';
import type { Logger } from '../shared/logger.ts';
import type { Clock } from '../shared/time.ts';
import { claimDueRefunds, finishRefundCheck, releaseRefundLeases } from './refund-checks.repository.ts';
import type { RefundExecution } from './refund-execution.ts';

export interface RefundCheckerOptions {
  concurrency: number;
  pollIntervalMs: number;
  timeoutMs: number;
  /** RECONCILE_SCHEDULE: the delays between looks; the last one repeats until the refund settles. */
  scheduleMs: readonly number[];
}

/**
 * The reconciler's loop for pending refunds: leases the due ones (several instances never lease the same one),
 * asks their gateways — sending again what a gateway never received — and schedules the next look until each
 * settles. A pending refund is never given up: after the schedule, it is asked at its last delay for ever.
 */
export function createRefundChecker(deps: { db: Database; execution: RefundExecution; clock: Clock; logger: Logger; options: RefundCheckerOptions }) {
  const { db, execution, clock, logger, options } = deps;
  const owner = `${hostname().slice(0, 32)}:${process.pid}:r${randomBytes(3).toString('hex')}`;
  // A look makes at most two calls (query, then the refund again).
  const leaseMs = options.timeoutMs * 2 + 5_000;
  const inFlight = new Map<string, { task: Promise<void>; abort: AbortController }>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let polling: Promise<number> | null = null;

  async function look(refund: RefundRow, abort: AbortController): Promise<void> {
    try {
      const order = await findOrderByNo(db.kysely, refund.order_no);
      if (order) await execution.check(refund, order, 'schedule', abort.signal);
    } catch (err) {
      logger.warn({ err, refundNo: refund.refund_no }, 'refund check failed (storage?); asked again at the next step');
    }
    const step = refund.check_step;
    const at = new Date(clock().getTime() + options.scheduleMs[Math.min(step, options.scheduleMs.length - 1)]!);
    await finishRefundCheck(db.kysely, refund.refund_no, owner, { at, step: step + 1 }).catch((err: unknown) =>
      logger.warn({ err, refundNo: refund.refund_no }, 'refund check: the next look could not be recorded; the lease runs out and it is asked again'),
    );
  }

  async function poll(): Promise<number> {
    if (polling) return polling;
    polling = (async () => {
      const free = options.concurrency - inFlight.size;
      if (free <= 0 || stopped) return 0;
      try {
        const due = await claimDueRefunds(db, owner, free, leaseMs, clock());
        for (const refund of due) {
          const entry = { abort: new AbortController(), task: Promise.resolve() };
          entry.task = look(refund, entry.abort).finally(() => inFlight.delete(refund.refund_no));
          inFlight.set(refund.refund_no, entry);
        }
        return due.length;
      } catch (err) {
        logger.warn({ err }, 'refund check: claiming due refunds failed; retrying at the next poll');
        return 0;
      }
    })().finally(() => (polling = null));
    return polling;
  }

  return {
    start() {
      stopped = false;
      clearInterval(timer);
      timer = setInterval(() => void poll(), options.pollIntervalMs);
      timer.unref();
      void poll();
    },
    /** Looks at everything due now and waits for it (tests, the CLI); returns how many looks ran. */
    async runOnce(): Promise<number> {
      let total = 0;
      for (;;) {
        const started = await poll();
        total += started;
        if (inFlight.size === 0 && started === 0) return total;
        await Promise.race([...inFlight.values()].map((e) => e.task));
      }
    },
    /** Stops leasing and waits for the looks in flight; past `waitMs` their leases are handed back. */
    async stop(waitMs = leaseMs): Promise<boolean> {
      stopped = true;
      clearInterval(timer);
      let waitTimer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<false>((resolve) => (waitTimer = setTimeout(() => resolve(false), Math.min(waitMs, 2 ** 31 - 1))));
      const drained = await Promise.race([Promise.allSettled([polling, ...[...inFlight.values()].map((e) => e.task)]).then(() => true as const), gaveUp]);
      clearTimeout(waitTimer);
      if (!drained) {
        for (const entry of inFlight.values()) entry.abort.abort();
        await releaseRefundLeases(db.kysely, owner, clock()).catch(() => 0);
      }
      return drained;
    },
  };
}

export type RefundChecker = ReturnType<typeof createRefundChecker>;
