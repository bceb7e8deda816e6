/**
 * Group commit: items that arrive while earlier groups hold the database wait in a queue, and the next free
 * slot takes them together, so one transaction (one commit, two round trips on MySQL) carries several of
 * them. A lone item under light load starts at once, alone; nothing waits for company.
 */
export interface GroupCommitOptions<T, R> {
  /** The most items in one group. */
  maxGroup: number;
  /** The most groups in flight at once; the queue builds up (and groups grow) behind them. */
  maxRunning: number;
  /** The most items waiting behind them; one more is refused at once with {@link QueueFull} (the caller retries later). */
  maxQueued: number;
  /** Items with equal keys never share a group (each must see the state the previous one left). */
  key(item: T): string;
  /** Runs one item in its own transaction; its result or error is that item's. */
  runOne(item: T): Promise<R>;
  /** Runs two or more items in one transaction: all commit together, or it throws and none did. */
  runGroup(items: T[]): Promise<R[]>;
  /** After a group failed: true to run its items again one by one (a statement error: nothing was committed). */
  retryAlone(err: unknown): boolean;
  /** True when an error means the database is out of reach: the items still queued then fail at once with it, instead of each waiting out its own timeout. */
  failQueued?(err: unknown): boolean;
  /** Told of each transaction: how many items it carried, or that a refused group is being run one by one. A hook that throws changes nothing. */
  onGroup?(size: number, retried: boolean): void;
}

/** The queue is at its bound: the item was not taken (nothing of it ran), and may be submitted again later. */
export class QueueFull extends Error {
  constructor(readonly queued: number) {
    super(`${queued} items are already waiting for the database`);
  }
}

interface Entry<T, R> {
  item: T;
  resolve(result: R): void;
  reject(err: unknown): void;
}

export interface GroupCommit<T, R> {
  submit(item: T): Promise<R>;
  /** Items waiting for a slot (not those in flight). */
  queued(): number;
}

export function createGroupCommit<T, R>(options: GroupCommitOptions<T, R>): GroupCommit<T, R> {
  let queue: Entry<T, R>[] = [];
  let running = 0;

  /** The next group: queue order, skipping (and keeping queued) any item whose key is already in it. */
  function take(): Entry<T, R>[] {
    const group: Entry<T, R>[] = [];
    const keys = new Set<string>();
    const skipped: Entry<T, R>[] = [];
    let i = 0;
    for (; i < queue.length && group.length < options.maxGroup; i++) {
      const entry = queue[i]!;
      const key = options.key(entry.item);
      if (keys.has(key)) skipped.push(entry);
      else {
        keys.add(key);
        group.push(entry);
      }
    }
    queue = i === queue.length ? skipped : skipped.concat(queue.slice(i));
    return group;
  }

  function pump(): void {
    while (running < options.maxRunning && queue.length > 0) {
      const group = take();
      running++;
      void run(group)
        // Whatever went wrong (a hook, a policy callback), no caller is left waiting: settled entries ignore this.
        .catch((err: unknown) => {
          for (const entry of group) entry.reject(err);
        })
        .finally(() => {
          running--;
          pump();
        });
    }
  }

  /** Metrics must never fail a payment: a throwing hook is ignored. */
  function note(size: number, retried: boolean): void {
    try {
      options.onGroup?.(size, retried);
    } catch {
      // ignored on purpose
    }
  }

  function failed(err: unknown): boolean {
    if (!options.failQueued?.(err)) return false;
    const waiting = queue;
    queue = [];
    for (const entry of waiting) entry.reject(err);
    return true;
  }

  /** Runs one item alone; returns the error when it showed the database out of reach (the queue was failed with it). */
  async function runAlone(entry: Entry<T, R>): Promise<{ unreachable: unknown } | null> {
    note(1, false);
    try {
      entry.resolve(await options.runOne(entry.item));
      return null;
    } catch (err) {
      entry.reject(err);
      return failed(err) ? { unreachable: err } : null;
    }
  }

  async function run(group: Entry<T, R>[]): Promise<void> {
    if (group.length === 1) {
      await runAlone(group[0]!);
      return;
    }
    let results: R[];
    try {
      results = await options.runGroup(group.map((e) => e.item));
    } catch (err) {
      if (options.retryAlone(err)) {
        note(group.length, true);
        // One after the other in this group's own slot: never more transactions than maxRunning.
        for (let i = 0; i < group.length; i++) {
          const down = await runAlone(group[i]!);
          if (!down) continue;
          // Out of reach: the rest of the group fails like the queue did, without trying.
          for (const entry of group.slice(i + 1)) entry.reject(down.unreachable);
          break;
        }
      } else {
        for (const entry of group) entry.reject(err);
        failed(err);
      }
      return;
    }
    group.forEach((entry, i) => entry.resolve(results[i]!));
    note(group.length, false);
  }

  return {
    submit(item: T): Promise<R> {
      // Beyond the bound, waiting would only add latency the gateway does not wait for: refuse now, it retries.
      if (queue.length >= options.maxQueued) return Promise.reject(new QueueFull(queue.length));
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        pump();
      });
    },
    queued: () => queue.length,
  };
}
