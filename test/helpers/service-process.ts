import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/shared/paths.ts';

const TSX = join(PROJECT_ROOT, 'node_modules/.bin/tsx');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcess {
  name: string;
  port: number;
  baseUrl: string;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** SIGTERM (or SIGINT) to the `tsx` process, which relays it to the service, as an operator would. */
  signal(signal: 'SIGTERM' | 'SIGINT'): void;
  /** A crash: SIGKILL to the whole process group (`tsx` runs the service in a child node process). */
  crash(): void;
  /** Resolves with the exit of the `tsx` process; rejects after `ms`. */
  exit(ms?: number): Promise<Exit>;
  /** Pids of the process group (tsx and the node process running src/main.ts). */
  pids(): number[];
}

const running = new Set<number>();
const killGroup = (pgid: number) => {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
};
// A safety net should the test runner exit without running afterAll: never leave services behind.
process.once('exit', () => running.forEach(killGroup));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** Polls `check` every `intervalMs` until it returns a truthy value; throws `describe()` after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T> | T,
  timeoutMs: number,
  intervalMs = 50,
  describe?: () => Promise<string> | string,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describe ? `: ${await describe()}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Runs `tsx src/main.ts` with exactly `env` (plus PATH, HOST=127.0.0.1 and a free PORT) in its own process
 * group, and waits until it listens. Call `stopAllServices()` in afterAll/afterEach.
 */
export async function startService(name: string, env: Record<string, string>, startupMs = 30_000): Promise<ServiceProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(name, env, startupMs);
    } catch (err) {
      // A free port may be taken between the probe and the child's listen: try another one.
      if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

async function startOnce(name: string, env: Record<string, string>, startupMs: number): Promise<ServiceProcess> {
  const port = await freePort();
  const child = spawn(TSX, ['src/main.ts'], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TZ: 'UTC', ...env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group, so a crash takes the node grandchild down too
  });
  const pgid = child.pid!;
  running.add(pgid);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => {
      if (code !== null) running.delete(pgid); // tsx exits after its child: the group is empty
      resolve({ code, signal });
    }),
  );
  let members: number[] | undefined;
  const service: ServiceProcess = {
    name,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    output: () => out,
    signal: (signal) => child.kill(signal),
    crash() {
      killGroup(pgid);
      running.delete(pgid);
    },
    exit: (ms = 15_000) =>
      Promise.race([
        exited,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${name} did not exit within ${ms} ms; output:\n${out}`)), ms).unref()),
      ]),
    pids: () => (members ??= groupMembers(pgid)),
  };
  try {
    await waitUntil(`${name} to listen`, () => /listening on /.test(out) || child.exitCode !== null, startupMs, 50);
  } catch (err) {
    service.crash();
    throw new Error(`${(err as Error).message}; output:\n${out}`, { cause: err });
  }
  if (!/listening on /.test(out)) throw new Error(`${name} exited (${child.exitCode}) before listening; output:\n${out}`);
  return service;
}

/** SIGKILLs every service process group still known to run (cleanup; a graceful stop is the test's job). */
export async function stopAllServices(): Promise<void> {
  for (const pgid of running) killGroup(pgid);
  running.clear();
  await new Promise((r) => setTimeout(r, 100));
}

/** Pids whose process group is `pgid` (Linux /proc; empty elsewhere). */
function groupMembers(pgid: number): number[] {
  if (!existsSync('/proc/self/stat')) {
    if (process.env.CI === 'true') throw new Error('CI=true but there is no /proc: cannot tell the pids of a service process');
    return [];
  }
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Whether /proc lets us tell which process holds a TCP connection (Linux). */
export const canSeeConnections = () => existsSync('/proc/net/tcp');

/** Which of `pids` hold an established IPv4 TCP connection to local port `port` right now (Linux /proc). */
export function pidsConnectedTo(port: number, pids: number[]): Set<number> {
  const inodes = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const remotePort = fields[2]?.split(':')[1];
    if (remotePort && parseInt(remotePort, 16) === port && fields[3] === '01') inodes.add(`socket:[${fields[9]}]`);
  }
  const found = new Set<number>();
  for (const pid of pids) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) found.add(pid);
        } catch {
          // fd closed meanwhile
        }
      }
    } catch {
      // process gone
    }
  }
  return found;
}
