import { describe, expect, it } from 'vitest';
import { createGroupCommit, type GroupCommitOptions } from '../src/db/fast-path/group-commit.ts';

interface Item {
  key: string;
  id: number;
}

/** A group commit whose transactions finish only when the test says so, recording what ran. */
function harness(overrides: Partial<GroupCommitOptions<Item, string>> = {}) {
  const runs: Array<{ kind: 'one' | 'group'; ids: number[]; finish: (err?: Error) => void }> = [];
  const events: Array<[number, boolean]> = [];
  const gate = (kind: 'one' | 'group', items: Item[]) =>
    new Promise<void>((resolve, reject) => runs.push({ kind, ids: items.map((i) => i.id), finish: (err) => (err ? reject(err) : resolve()) }));
  const group = createGroupCommit<Item, string>({
    maxGroup: 3,
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
    onGroup: (size, retried) => events.push([size, retried]),
    ...overrides,
  });
  const settled = new Map<number, string>();
  const submit = (id: number, key = `k${id}`) =>
    group.submit({ id, key }).then(
      (r) => settled.set(id, r),
      (e: Error) => settled.set(id, `error:${e.message}`),
    );
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  return { runs, events, settled, submit, tick };
}

describe('group commit', () => {
  it('runs a lone item at once, alone', async () => {
    const h = harness();
    const done = h.submit(1);
    await h.tick();
    expect(h.runs.map((r) => [r.kind, r.ids])).toEqual([['one', [1]]]);
    h.runs[0]!.finish();
    await done;
    expect(h.settled.get(1)).toBe('one:1');
    expect(h.events).toEqual([[1, false]]);
  });

  it('queues items behind a busy slot and commits them together, in arrival order, at most maxGroup at a time', async () => {
    const h = harness();
    const all = [1, 2, 3, 4, 5].map((id) => h.submit(id));
    await h.tick();
    expect(h.runs.map((r) => [r.kind, r.ids])).toEqual([['one', [1]]]);
    h.runs[0]!.finish();
    await h.tick();
    expect(h.runs.map((r) => [r.kind, r.ids])).toEqual([
      ['one', [1]],
      ['group', [2, 3, 4]],
    ]);
    h.runs[1]!.finish();
    await h.tick();
    expect(h.runs[2]).toMatchObject({ kind: 'one', ids: [5] });
    h.runs[2]!.finish();
    await Promise.all(all);
    expect([...h.settled.entries()].sort()).toEqual([
      [1, 'one:1'],
      [2, 'group:2'],
      [3, 'group:3'],
      [4, 'group:4'],
      [5, 'one:5'],
    ]);
    expect(h.events).toEqual([
      [1, false],
      [3, false],
      [1, false],
    ]);
  });

  it('never puts two items with one key in a group: the later one waits for the next, keeping its place', async () => {
    const h = harness();
    const all = [h.submit(1, 'a'), h.submit(2, 'a'), h.submit(3, 'b'), h.submit(4, 'a'), h.submit(5, 'c')];
    await h.tick();
    h.runs[0]!.finish(); // item 1 alone
    await h.tick();
    expect(h.runs[1]!.ids).toEqual([2, 3, 5]);
    h.runs[1]!.finish();
    await h.tick();
    expect(h.runs[2]).toMatchObject({ kind: 'one', ids: [4] });
    h.runs[2]!.finish();
    await Promise.all(all);
  });

  it('runs the items of a refused group one by one, each with its own result or error', async () => {
    const h = harness();
    const all = [1, 2, 3].map((id) => h.submit(id));
    await h.tick();
    h.runs[0]!.finish();
    await h.tick();
    h.runs[1]!.finish(new Error('duplicate nonce'));
    await h.tick();
    // One at a time, in the group's own slot (maxRunning is 1).
    expect(h.runs.slice(2).map((r) => [r.kind, r.ids])).toEqual([['one', [2]]]);
    h.runs[2]!.finish(new Error('replayed'));
    await h.tick();
    expect(h.runs.slice(2).map((r) => [r.kind, r.ids])).toEqual([
      ['one', [2]],
      ['one', [3]],
    ]);
    h.runs[3]!.finish();
    await Promise.all(all);
    expect(h.settled.get(2)).toBe('error:replayed');
    expect(h.settled.get(3)).toBe('one:3');
    expect(h.events).toEqual([
      [1, false],
      [2, true],
      [1, false],
      [1, false],
    ]);
  });

  it('fails every item of a group with its error when running them again is not safe (e.g. a lost connection)', async () => {
    const h = harness({ retryAlone: () => false });
    const all = [1, 2, 3].map((id) => h.submit(id));
    await h.tick();
    h.runs[0]!.finish();
    await h.tick();
    h.runs[1]!.finish(new Error('connection lost'));
    await Promise.all(all);
    expect(h.runs).toHaveLength(2);
    expect(h.settled.get(2)).toBe('error:connection lost');
    expect(h.settled.get(3)).toBe('error:connection lost');
  });

  it('when the database is out of reach, the items still queued fail at once with the same error', async () => {
    const h = harness({ failQueued: (err) => (err as Error).message === 'connection lost' });
    const all = [1, 2, 3].map((id) => h.submit(id));
    await h.tick();
    h.runs[0]!.finish(new Error('connection lost'));
    await Promise.all(all);
    expect(h.runs).toHaveLength(1);
    expect([...h.settled.values()]).toEqual(['error:connection lost', 'error:connection lost', 'error:connection lost']);
  });

  it('an ordinary failure fails only its own item; the queue goes on', async () => {
    const h = harness({ failQueued: (err) => (err as Error).message === 'connection lost' });
    const all = [1, 2].map((id) => h.submit(id));
    await h.tick();
    h.runs[0]!.finish(new Error('replayed'));
    await h.tick();
    h.runs[1]!.finish();
    await Promise.all(all);
    expect(h.settled.get(1)).toBe('error:replayed');
    expect(h.settled.get(2)).toBe('one:2');
  });

  it('keeps up to maxRunning transactions in flight before anything queues', async () => {
    const h = harness({ maxRunning: 2 });
    const all = [1, 2, 3].map((id) => h.submit(id));
    await h.tick();
    expect(h.runs.map((r) => r.ids)).toEqual([[1], [2]]);
    h.runs[1]!.finish();
    await h.tick();
    expect(h.runs[2]!.ids).toEqual([3]);
    h.runs[0]!.finish();
    h.runs[2]!.finish();
    await Promise.all(all);
    expect(h.settled.size).toBe(3);
  });
});
