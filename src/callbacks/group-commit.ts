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
  /** Told of each transaction: how many items it carried, or that a refused group is being run one by one. */
  onGroup?(size: number, retried: boolean): void;
}

interface Entry<T, R> {
  item: T;
  resolve(result: R): void;
  reject(err: unknown): void;
}

export interface GroupCommit<T, R> {
  submit(item: T): Promise<R>;
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
      void run(group).finally(() => {
        running--;
        pump();
      });
    }
  }

  function failed(err: unknown): void {
    if (!options.failQueued?.(err)) return;
    const waiting = queue;
    queue = [];
    for (const entry of waiting) entry.reject(err);
  }

  async function runAlone(entry: Entry<T, R>): Promise<void> {
    options.onGroup?.(1, false);
    try {
      entry.resolve(await options.runOne(entry.item));
    } catch (err) {
      entry.reject(err);
      failed(err);
    }
  }

  async function run(group: Entry<T, R>[]): Promise<void> {
    if (group.length === 1) return runAlone(group[0]!);
    let results: R[];
    try {
      results = await options.runGroup(group.map((e) => e.item));
    } catch (err) {
      if (options.retryAlone(err)) {
        options.onGroup?.(group.length, true);
        await Promise.all(group.map(runAlone));
      } else {
        for (const entry of group) entry.reject(err);
        failed(err);
      }
      return;
    }
    options.onGroup?.(group.length, false);
    group.forEach((entry, i) => entry.resolve(results[i]!));
  }

  return {
    submit(item: T): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        pump();
      });
    },
  };
}
