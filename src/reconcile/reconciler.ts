import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Database } from '../db/database.ts';
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
 * The in-process reconcile loop: every poll it leases the pending orders whose look is due (several instances
 * on one database never lease the same order), asks their gateways with bounded concurrency, and records when
 * to look next. A crash leaves the lease to run out: the order is simply due again.
 */
export function createReconciler(deps: { db: Database; service: ReconcileService; clock: Clock; logger: Logger; options: ReconcilerOptions }) {
  const { db, service, clock, logger, options } = deps;
  const owner = `${hostname().slice(0, 32)}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const leaseMs = options.timeoutMs * 3 + 5_000;
  const inFlight = new Map<string, { task: Promise<void>; abort: AbortController }>();
  let running = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<number> | null = null;
  let pollAgain = false;
  // The last claim filled every free slot: more is probably due.
  let backlog = false;
  const refillAt = Math.max(1, Math.floor(options.concurrency / 4));

  async function look(order: DueOrder, abort: AbortController): Promise<void> {
    const now = clock();
    const expiresAt = order.expires_at ? fromDbTime(order.expires_at) : null;
    const trigger = expiresAt && expiresAt.getTime() <= now.getTime() ? 'expiry' : 'schedule';
    let next: NextCheck | null = null;
    try {
      const result = await service.check(order, trigger, abort.signal);
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

  function start(order: DueOrder): Promise<void> {
    const entry = { abort: new AbortController(), task: Promise.resolve() };
    entry.task = look(order, entry.abort).finally(() => {
      inFlight.delete(order.order_no);
      // A backlog is worked through at the gateway's pace, not one claim per poll interval (a quarter of the slots at a time).
      if (running && backlog && options.concurrency - inFlight.size >= refillAt) refill();
    });
    inFlight.set(order.order_no, entry);
    return entry.task;
  }

  /** Leases what is due (up to the free slots) and starts looking; resolves with how many it started. */
  async function poll(): Promise<number> {
    if (polling) return polling;
    polling = (async () => {
      const free = options.concurrency - inFlight.size;
      // After stop() nothing more is leased, not even by a runOnce still looping (its leases were just given back).
      if (free <= 0 || stopped) return 0;
      try {
        const due = await claimDueOrders(db, owner, free, leaseMs, clock());
        backlog = due.length === free;
        for (const order of due) void start(order);
        return due.length;
      } catch (err) {
        logger.warn({ err }, 'reconcile: claiming due orders failed; retrying at the next poll');
        return 0;
      }
    })().finally(() => {
      polling = null;
      if (pollAgain && running) {
        pollAgain = false;
        void poll();
      }
    });
    return polling;
  }

  function refill(): void {
    if (polling) pollAgain = true;
    else void poll();
  }

  return {
    owner,
    start() {
      if (running) return;
      running = true;
      stopped = false;
      timer = setInterval(() => void poll(), options.pollIntervalMs);
      timer.unref();
      void poll();
    },
    /** Looks at everything due now and waits for it (tests, benchmarks, the CLI); returns how many looks ran. */
    async runOnce(): Promise<number> {
      let total = 0;
      for (;;) {
        const started = await poll();
        total += started;
        if (inFlight.size === 0 && started === 0) return total;
        await Promise.race([...inFlight.values()].map((e) => e.task));
      }
    },
    /** Stops leasing and waits for the looks in flight (each bounded by the gateway timeouts); past `waitMs` their leases are handed back. */
    async stop(waitMs = leaseMs): Promise<boolean> {
      running = false;
      stopped = true;
      clearInterval(timer);
      let waitTimer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<false>((resolve) => (waitTimer = setTimeout(() => resolve(false), Math.min(waitMs, 2 ** 31 - 1))));
      const drained = await Promise.race([Promise.allSettled([polling, ...[...inFlight.values()].map((e) => e.task)]).then(() => true as const), gaveUp]);
      clearTimeout(waitTimer);
      if (!drained) {
        for (const entry of inFlight.values()) entry.abort.abort();
        const released = await releaseLeases(db.kysely, owner, clock()).catch(() => 0);
        logger.warn({ released }, 'reconcile: stopped with looks in flight; their orders are due again');
      }
      return drained;
    },
    inFlightCount: () => inFlight.size,
  };
}

export type Reconciler = ReturnType<typeof createReconciler>;
