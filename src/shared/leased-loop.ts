/** What a leased loop claims and does; the storage behind `claim` and `release` is the caller's. */
export interface LeasedLoopParts<T> {
  /** Work items in flight per process. */
  concurrency: number;
  pollIntervalMs: number;
  /** How long a claimed item stays this process's: stop() waits at most this long by default. */
  leaseMs: number;
  /** Leases up to `limit` due items to this process (several processes never lease the same one). */
  claim(limit: number): Promise<T[]>;
  keyOf(item: T): string;
  /** Works on one leased item; handles its own errors (a rejection is only logged through onError). */
  work(item: T, signal: AbortSignal): Promise<void>;
  /** After a stop that could not wait: hands back what this process still leases, so another one takes it. */
  release(): Promise<number>;
  onError(err: unknown, during: 'claim' | 'work' | 'release'): void;
}

/**
 * An in-process loop over leased work (the reconciler's orders, pending refunds): every poll it claims what is due
 * up to the free slots and works on it with bounded concurrency. A finished item refills the slots while a backlog
 * is due, so a backlog is worked through at the pace of the work, not one claim per poll interval. A crash leaves
 * its leases to run out: the items are simply due again.
 */
export function createLeasedLoop<T>(parts: LeasedLoopParts<T>) {
  const { concurrency } = parts;
  const inFlight = new Map<string, { task: Promise<void>; abort: AbortController }>();
  let running = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<number> | null = null;
  let pollAgain = false;
  // The last claim filled every free slot: more is probably due.
  let backlog = false;
  const refillAt = Math.max(1, Math.floor(concurrency / 4));

  function begin(item: T): void {
    const key = parts.keyOf(item);
    const entry = { abort: new AbortController(), task: Promise.resolve() };
    entry.task = parts
      .work(item, entry.abort.signal)
      .catch((err: unknown) => parts.onError(err, 'work'))
      .finally(() => {
        inFlight.delete(key);
        // A quarter of the slots at a time, while the last claim suggested more is due.
        if (running && backlog && concurrency - inFlight.size >= refillAt) refill();
      });
    inFlight.set(key, entry);
  }

  /** Claims what is due (up to the free slots) and starts working; resolves with how many it started. */
  async function poll(): Promise<number> {
    if (polling) return polling;
    polling = (async () => {
      const free = concurrency - inFlight.size;
      // After stop() nothing more is claimed, not even by a runOnce still looping (its leases were just given back).
      if (free <= 0 || stopped) return 0;
      try {
        const due = await parts.claim(free);
        backlog = due.length === free;
        for (const item of due) begin(item);
        return due.length;
      } catch (err) {
        parts.onError(err, 'claim');
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
    start() {
      if (running) return;
      running = true;
      stopped = false;
      timer = setInterval(() => void poll(), parts.pollIntervalMs);
      timer.unref();
      void poll();
    },
    /** Works through everything due now and waits for it (tests, benchmarks, the CLI); returns how many items ran. */
    async runOnce(): Promise<number> {
      let total = 0;
      for (;;) {
        const started = await poll();
        total += started;
        if (inFlight.size === 0 && started === 0) return total;
        await Promise.race([...inFlight.values()].map((e) => e.task));
      }
    },
    /** Stops claiming and waits for the work in flight; past `waitMs` it is aborted and its leases handed back. Resolves true when it drained. */
    async stop(waitMs = parts.leaseMs): Promise<boolean> {
      running = false;
      stopped = true;
      clearInterval(timer);
      let waitTimer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<false>((resolve) => (waitTimer = setTimeout(() => resolve(false), Math.min(waitMs, 2 ** 31 - 1))));
      const drained = await Promise.race([Promise.allSettled([polling, ...[...inFlight.values()].map((e) => e.task)]).then(() => true as const), gaveUp]);
      clearTimeout(waitTimer);
      if (!drained) {
        for (const entry of inFlight.values()) entry.abort.abort();
        await parts.release().catch((err: unknown) => parts.onError(err, 'release'));
      }
      return drained;
    },
    inFlightCount: () => inFlight.size,
  };
}

export type LeasedLoop = ReturnType<typeof createLeasedLoop>;
