import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGroupCommit, QueueFull, type GroupCommitOptions } from '../src/db/fast-path/group-commit.ts';
import { metricsOf } from '../src/metrics/metrics.registry.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { nowSeconds, signed } from './helpers/gateway-signer.ts';

interface Item {
  key: string;
  id: number;
}

/** A group commit whose transactions finish when the test says so; it counts transactions in flight. */
function harness(overrides: Partial<GroupCommitOptions<Item, string>> = {}) {
  const runs: Array<{ kind: 'one' | 'group'; ids: number[]; finish: (err?: Error) => void }> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const gate = (kind: 'one' | 'group', items: Item[]) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    return new Promise<void>((resolve, reject) => runs.push({ kind, ids: items.map((i) => i.id), finish: (err) => (err ? reject(err) : resolve()) })).finally(
      () => inFlight--,
    );
  };
  const group = createGroupCommit<Item, string>({
    maxGroup: 4,
    maxRunning: 1,
    maxQueued: 100,
    key: (item) => item.key,
    runOne: async (item) => {
      await gate('one', [item]);
      return `one:${item.id}`;
    },
    runGroup: async (items) => {
      await gate('group', items);
      return items.map((i) => `group:${i.id}`);
    },
    retryAlone: () => true,
    ...overrides,
  });
  const settled = new Map<number, string>();
  const submit = (id: number, key = `k${id}`) =>
    group.submit({ id, key }).then(
      (r) => settled.set(id, r),
      (e: Error) => settled.set(id, e instanceof QueueFull ? 'full' : `error:${e.message}`),
    );
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  /** Finishes every transaction that is running, until nothing more starts. */
  const drain = async () => {
    for (let done = 0; ; ) {
      await tick();
      await tick();
      if (done >= runs.length) return;
      while (done < runs.length) runs[done++]!.finish();
    }
  };
  return { group, runs, settled, submit, tick, drain, maxInFlight: () => maxInFlight };
}

describe('group commit: a bounded queue', () => {
  it('refuses an item beyond maxQueued at once (QueueFull), while the queued ones still run', async () => {
    const h = harness({ maxQueued: 3 });
    const all = [1, 2, 3, 4, 5, 6].map((id) => h.submit(id));
    await h.tick();
    // 1 runs, 2..4 wait (the bound), 5 and 6 are refused without waiting for anything.
    expect(h.group.queued()).toBe(3);
    expect(h.settled.get(5)).toBe('full');
    expect(h.settled.get(6)).toBe('full');
    expect(h.runs).toHaveLength(1);
    await h.drain();
    await Promise.all(all);
    expect([...h.settled.entries()].sort()).toEqual([
      [1, 'one:1'],
      [2, 'group:2'],
      [3, 'group:3'],
      [4, 'group:4'],
      [5, 'full'],
      [6, 'full'],
    ]);
    expect(h.group.queued()).toBe(0);
    // Room again: a new item is taken.
    const later = h.submit(7);
    await h.drain();
    await later;
    expect(h.settled.get(7)).toBe('one:7');
  });
});

describe('group commit: a refused group within the in-flight limit', () => {
  it('runs the members of a refused group one after the other, never more transactions than maxRunning', async () => {
    const h = harness({ maxRunning: 2, maxGroup: 8 });
    const all = Array.from({ length: 12 }, (_, i) => h.submit(i + 1));
    await h.tick();
    expect(h.runs.map((r) => r.ids)).toEqual([[1], [2]]);
    h.runs[0]!.finish();
    await h.tick();
    expect(h.runs[2]).toMatchObject({ kind: 'group', ids: [3, 4, 5, 6, 7, 8, 9, 10] });
    h.runs[2]!.finish(new Error('duplicate nonce'));
    await h.tick();
    // The refused group's eight members run again alone, in its own slot: with slot 2 still busy, one at a time.
    expect(h.runs.slice(3).map((r) => [r.kind, r.ids])).toEqual([['one', [3]]]);
    await h.drain();
    await Promise.all(all);
    expect(h.maxInFlight()).toBe(2);
    expect([...h.settled.values()].every((v) => v.startsWith('one:') || v.startsWith('group:'))).toBe(true);
    expect(h.settled.size).toBe(12);
  });

  it('when a member run alone finds the database out of reach, the rest of the group fails with it at once', async () => {
    const h = harness({ failQueued: (err) => (err as Error).message === 'connection lost' });
    const all = [1, 2, 3, 4].map((id) => h.submit(id));
    await h.tick();
    h.runs[0]!.finish();
    await h.tick();
    h.runs[1]!.finish(new Error('duplicate nonce')); // group [2, 3, 4]
    await h.tick();
    h.runs[2]!.finish(new Error('connection lost')); // 2 alone
    await Promise.all(all);
    expect(h.runs).toHaveLength(3);
    expect([h.settled.get(2), h.settled.get(3), h.settled.get(4)]).toEqual(['error:connection lost', 'error:connection lost', 'error:connection lost']);
  });
});

describe('group commit: every waiter settles on every path', () => {
  const throwingHook = () => {
    throw new Error('metrics broke');
  };

  it('a throwing onGroup hook changes no result: alone, grouped, and a refused group run again', async () => {
    const h = harness({ onGroup: throwingHook });
    const all = [1, 2, 3, 4, 5, 6, 7].map((id) => h.submit(id));
    await h.tick();
    h.runs[0]!.finish(); // 1 alone
    await h.tick();
    h.runs[1]!.finish(); // group [2..5]
    await h.tick();
    h.runs[2]!.finish(new Error('duplicate nonce')); // group [6, 7], refused: run again alone
    await h.drain();
    await Promise.all(all);
    expect([...h.settled.entries()].sort()).toEqual([
      [1, 'one:1'],
      [2, 'group:2'],
      [3, 'group:3'],
      [4, 'group:4'],
      [5, 'group:5'],
      [6, 'one:6'],
      [7, 'one:7'],
    ]);
  });

  it('a policy callback that throws (retryAlone, failQueued) fails the items it concerns instead of leaving them waiting', async () => {
    const h = harness({
      retryAlone: () => {
        throw new Error('policy broke');
      },
      failQueued: () => {
        throw new Error('policy broke too');
      },
    });
    const all = [1, 2, 3, 4].map((id) => h.submit(id));
    await h.tick();
    h.runs[0]!.finish(new Error('replayed')); // 1 alone fails; failQueued throws
    await h.tick();
    h.runs[1]!.finish(new Error('duplicate nonce')); // group [2, 3, 4]; retryAlone throws
    await Promise.all(all);
    expect(h.settled.get(1)).toBe('error:replayed');
    expect([h.settled.get(2), h.settled.get(3), h.settled.get(4)]).toEqual(['error:policy broke', 'error:policy broke', 'error:policy broke']);
    // And the queue goes on.
    const next = h.submit(5);
    await h.drain();
    await next;
    expect(h.settled.get(5)).toBe('one:5');
  });
});

describe.each(ENGINES)('callbacks under overload on %s', (engine) => {
  let ctx: TestContext;
  let server: Server;
  let base: string;
  beforeAll(async () => {
    // A pool of 4: one callback transaction at a time on MySQL (SQLite always has one), so the bound is 32 × 1 × 4 = 128.
    ctx = await createTestContext(engine, { env: { DATABASE_POOL_SIZE: '4', CALLBACK_REJECT_RATE_PER_MINUTE: 'off' } });
    server = ctx.app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    server.close();
    await ctx.close();
  });

  const notify = (orderNo: string) =>
    fetch(`${base}/notify`, {
      method: 'POST',
      body: new URLSearchParams(
        signed(
          { order_no: orderNo, transaction_id: `T-${orderNo}`, amount: '8.00', status: 'success', timestamp: nowSeconds(), nonce: `n-${orderNo}` },
          TEST_GATEWAY_SECRET,
        ),
      ),
    }).then(async (res) => ({ status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { code?: string } }));
  const depth = async () => Number(/callback_queue_depth (\d+)/.exec(await metricsOf(ctx.app)!.registry.metrics())?.[1]);

  it(
    'answers 503 unavailable at once beyond the queue bound, shows the depth on /metrics, and still completes what it queued',
    { timeout: 60_000 },
    async () => {
      expect((await ctx.api('post', '/api/orders').send({ order_no: 'OVL-HELD', amount: '8.00' })).status).toBe(201);
      // Hold what the first callback needs (the order row on MySQL, the only connection on SQLite) until the test lets go.
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let holding!: () => void;
      const held = new Promise<void>((r) => (holding = r));
      const holder = ctx.db.kysely.transaction().execute(async (trx) => {
        await sql`update orders set updated_at = updated_at where order_no = ${'OVL-HELD'}`.execute(trx);
        holding();
        await released;
      });
      await held;
      const first = notify('OVL-HELD');
      await new Promise((r) => setTimeout(r, 300)); // it runs, and waits on the database
      const queued = Array.from({ length: 128 }, (_, i) => notify(`OVL-Q${i}`));
      await expect.poll(depth, { timeout: 10_000 }).toBe(128);
      const started = Date.now();
      const refused = await Promise.all(Array.from({ length: 5 }, (_, i) => notify(`OVL-X${i}`)));
      expect(Date.now() - started).toBeLessThan(2000);
      for (const r of refused) expect(r).toMatchObject({ status: 503, retryAfter: '5', body: { code: 'unavailable' } });
      const exposition = await ctx.api('get', '/metrics');
      expect(exposition.text).toMatch(/^callback_queue_depth 128$/m);
      expect(exposition.text).toMatch(/payment_callbacks_total\{gateway="generic",verdict="unavailable"\} 5/);

      release();
      await holder;
      expect((await first).status).toBe(200);
      const answers = await Promise.all(queued);
      // Unknown orders: decided (404), never refused for the load.
      expect(answers.every((a) => a.status === 404)).toBe(true);
      expect(await depth()).toBe(0);
      const logged = await ctx.db.kysely.selectFrom('payment_logs').select('order_no').where('order_no', 'like', 'OVL-X%').execute();
      expect(logged).toEqual([]); // the refused ones left no trace: nothing was decided
    },
  );
});
