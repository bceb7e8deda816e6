import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { AppConfig } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { Logger } from '../shared/logger.ts';
import type { Clock } from '../shared/time.ts';
import { attemptDelivery, createDeliveryAgent, type DeliverySettings } from './delivery.ts';
import { createCompletionBatcher } from './completion-batcher.ts';
import type { Completion } from './completion.repository.ts';
import { claimDueEvents, releaseLeases, type ClaimedEvent } from './delivery.repository.ts';
import { DeliveryMetrics } from './delivery.metrics.ts';
import { DeliverySlots } from './delivery-slots.ts';
import { nextState } from './retry-policy.ts';

/** Coalesces a burst of commits into one claim, while keeping a healthy merchant's latency low. */
const WAKE_DEBOUNCE_MS = 3;
/** A lease outlives the longest attempt, so only a crashed or frozen process loses its claims. */
const LEASE_MARGIN_MS = 5_000;

export interface DispatcherDeps {
  db: Database;
  config: Pick<AppConfig, 'notify' | 'secrets'>;
  logger: Logger;
  clock: Clock;
  metrics?: DeliveryMetrics;
  /** The retry schedule in force (console runtime settings); NOTIFY_RETRY_SCHEDULE when absent. */
  retryScheduleMs?: () => readonly number[];
}

/** The in-process delivery loop: woken by commits, polling for due retries, bounded concurrency. */
export function createDispatcher({
  db,
  config,
  logger,
  clock,
  metrics = new DeliveryMetrics(),
  retryScheduleMs = () => config.notify.retryScheduleMs,
}: DispatcherDeps) {
  const owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const settings: DeliverySettings = {
    secret: config.secrets.NOTIFY_SECRET,
    signType: config.notify.signType,
    timeoutMs: config.notify.timeoutMs,
    expectBody: config.notify.expectBody,
    allowPrivateNetworks: config.notify.allowPrivateNetworks,
  };
  const leaseMs = settings.timeoutMs + LEASE_MARGIN_MS;
  const agent = createDeliveryAgent(settings);
  const slots = new DeliverySlots(config.notify.concurrency, (message) => logger.error(message));
  const inFlight = new Set<Promise<void>>();
  let running = false;
  let polling = false;
  let pollAgain = false;
  let backlogLikely = false;
  let timer: NodeJS.Timeout | undefined;
  let wakeTimer: NodeJS.Timeout | undefined;
  let claiming: Promise<ClaimedEvent[]> | undefined;
  // While a backlog is likely, each flush claims the slots it frees in its own transaction (one per cycle).
  const completions = createCompletionBatcher(db, owner, clock, {
    slots,
    leaseMs,
    claiming: () => running && backlogLikely,
    claimed(events, asked) {
      backlogLikely = events.length === asked;
      for (const event of events) start(event);
    },
  });

  async function deliver(event: ClaimedEvent): Promise<void> {
    let completion: Completion;
    let next: ReturnType<typeof nextState>;
    try {
      const startedAt = clock();
      const result = await attemptDelivery(event.url, event.payload, settings, agent, startedAt);
      next = nextState(result.verdict, event.schedule_step, retryScheduleMs(), clock());
      const attempt = {
        notificationId: event.id,
        attemptNo: event.attempts + 1,
        startedAt,
        durationMs: result.durationMs,
        statusCode: result.statusCode,
        error: result.error,
        excerpt: result.excerpt,
        privateTarget: result.privateTarget,
      };
      const update: Completion['update'] =
        next.status === 'pending'
          ? { status: next.status, nextAttemptAt: next.nextAttemptAt, scheduleStep: next.scheduleStep, lastError: next.reason }
          : { status: next.status, lastError: next.status === 'delivered' ? null : next.reason };
      completion = { attempt, update };
    } catch (err) {
      slots.release(1); // never handed to the batcher, which otherwise gives the slot back
      throw err;
    }
    // Grouped with other finished deliveries into one transaction, retried on deadlock: a lost write would mean a second delivery.
    const kept = await completions.complete(completion);
    metrics.record(next.status === 'pending' ? 'retry' : next.status);
    if (!kept) logger.warn({ eventId: event.event_id }, 'delivery finished after its lease was taken over; attempt recorded only');
    if (next.status !== 'delivered') logger.info({ eventId: event.event_id, status: next.status, reason: next.reason }, 'delivery attempt failed');
  }

  /** Delivers `event`, which already holds a slot. */
  function start(event: ClaimedEvent): void {
    const task: Promise<void> = deliver(event)
      .catch((err: unknown) => logger.error({ err, eventId: event.event_id }, 'delivery bookkeeping failed; the lease will expire and it is retried'))
      .finally(() => {
        inFlight.delete(task);
        // A flush that failed claimed nothing: refill once half the slots are free.
        if (running && backlogLikely && slots.free() >= config.notify.concurrency / 2) void poll();
      });
    inFlight.add(task);
  }

  async function poll(): Promise<void> {
    if (!running) return;
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    const free = slots.takeFree();
    let claimed: ClaimedEvent[] = [];
    try {
      if (free > 0) {
        claiming = claimDueEvents(db, owner, free, leaseMs, clock());
        claimed = await claiming;
        backlogLikely = claimed.length === free;
      } else {
        backlogLikely = true;
      }
    } catch (err) {
      logger.warn({ err }, 'claiming due notifications failed; retrying at the next poll');
    } finally {
      claiming = undefined;
      slots.release(free - claimed.length);
      for (const event of claimed) start(event);
      polling = false;
      if (pollAgain && running) {
        pollAgain = false;
        void poll();
      }
    }
  }

  return {
    owner,
    metrics,
    start() {
      if (running) return;
      running = true;
      timer = setInterval(() => void poll(), config.notify.pollIntervalMs);
      void poll();
    },
    /** Called after a commit that queued an event. */
    wake() {
      if (!running || wakeTimer) return;
      wakeTimer = setTimeout(() => {
        wakeTimer = undefined;
        void poll();
      }, WAKE_DEBOUNCE_MS);
    },
    /**
     * Stops claiming and waits for every delivery in flight to be sent and recorded (each attempt is limited to
     * NOTIFY_TIMEOUT_MS; its record then commits), so a stop never makes a merchant get an event twice. Only
     * when `waitMs` runs out first are the leases still held handed back; resolves true when nothing was left.
     */
    async stop(waitMs = leaseMs): Promise<boolean> {
      running = false;
      clearInterval(timer);
      clearTimeout(wakeTimer);
      wakeTimer = undefined;
      let waitOver = false;
      let waitTimer: NodeJS.Timeout | undefined;
      const wait = new Promise<void>((resolve) => (waitTimer = setTimeout(resolve, Math.min(waitMs, 2 ** 31 - 1)))).then(() => (waitOver = true));
      // A flush or claim under way may still start events: wait for those too, within the same time.
      while ((inFlight.size > 0 || claiming) && !waitOver) await Promise.race([Promise.allSettled([...inFlight, claiming]), wait]);
      clearTimeout(waitTimer);
      const drained = inFlight.size === 0;
      if (!drained) {
        const released = await releaseLeases(db.kysely, owner, clock()).catch(() => 0);
        logger.warn({ released, inFlight: inFlight.size }, 'stopped with deliveries in flight; their leases were released');
      }
      await agent.close().catch(() => undefined);
      return drained;
    },
    inFlightCount: () => inFlight.size,
    /** Slots held by claimed events not yet settled (0 once the loop is idle). */
    slotsInUse: () => slots.inUse(),
  };
}

export type Dispatcher = ReturnType<typeof createDispatcher>;
