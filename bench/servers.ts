import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, createReadStream, existsSync, fstatSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';

/** Fresh databases and the Node servers under test (ours, the Node yardstick), each a child process of the bench; the PHP yardstick is php-yardstick.ts. */

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const YARDSTICK_DIR = resolve(ROOT, '../shared/bench');
export const OURS_DB = 'bench_service';
export const YARDSTICK_DB = 'bench_minimal';

export function databaseUrl(base: string, database: string): string {
  const url = new URL(base);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Drops and recreates both databases; returns the server's version string and pid file. */
export async function prepareDatabases(baseUrl: string): Promise<{ version: string; pidFile: string | null }> {
  const conn = await mysql.createConnection({ uri: databaseUrl(baseUrl, ''), multipleStatements: true });
  try {
    const [rows] = await conn.query('SELECT VERSION() AS v, @@pid_file AS pid_file');
    await conn.query(`DROP DATABASE IF EXISTS ${OURS_DB}`);
    await conn.query(`CREATE DATABASE ${OURS_DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await conn.query(readFileSync(resolve(YARDSTICK_DIR, 'minimal-schema.sql'), 'utf8'));
    const row = (rows as Array<{ v: string; pid_file: string | null }>)[0];
    return { version: String(row?.v ?? 'unknown'), pidFile: row?.pid_file ?? null };
  } finally {
    await conn.end();
  }
}

/** A free loopback port (the small race until the child binds it is acceptable for a bench). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

export interface ServerChild {
  readonly name: string;
  readonly origin: string;
  readonly pid: number | undefined;
  /** Set once the process has exited (code or signal), also when the bench did not ask it to. */
  exit: string | null;
  readonly exited: Promise<void>;
  /** Lines the child wrote to the pipes (stderr, and stdout unless it goes to `logFile`). */
  lineCount: number;
  tail(): string[];
  /** Where the child's stdout (its request log) goes instead of a pipe, if anywhere. */
  readonly logFile: string | null;
  stop(): Promise<void>;
}

const TAIL_LINES = 40;

function track(name: string, origin: string, proc: ChildProcess, logFile: string | null = null): ServerChild {
  const lines: string[] = [];
  let exitResolve: () => void = () => undefined;
  const child: ServerChild = {
    name,
    origin,
    pid: proc.pid,
    exit: null,
    exited: new Promise<void>((r) => (exitResolve = r)),
    lineCount: 0,
    tail: () => [...lines],
    logFile,
    stop: () => stopChild(child, proc),
  };
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      child.lineCount += 1;
      lines.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
      if (lines.length > TAIL_LINES) lines.shift();
    }
  };
  proc.stdout?.on('data', collect);
  proc.stderr?.on('data', collect);
  proc.on('error', (err) => collect(Buffer.from(`spawn error: ${err.message}`)));
  proc.on('exit', (code, signal) => {
    child.exit = signal ? `signal ${signal}` : `code ${code}`;
    exitResolve();
  });
  return child;
}

/** SIGTERM, then SIGKILL to the child's process group after 10 s. */
async function stopChild(child: ServerChild, proc: ChildProcess): Promise<void> {
  if (child.exit !== null || proc.pid === undefined) return;
  proc.kill('SIGTERM');
  const timedOut = await Promise.race([child.exited.then(() => false), sleep(10_000, true)]);
  if (timedOut && child.exit === null) {
    process.stderr.write(`[bench] ${child.name} ignored SIGTERM for 10 s; sending SIGKILL\n`);
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      proc.kill('SIGKILL');
    }
    await child.exited;
  }
}

/** Only what a process needs to run: stray shell variables (REDIS_URL, …) must not change the service. */
function baseEnv(): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ'];
  return Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
}

export interface OursOptions {
  mysqlUrl: string;
  apiKey: string;
  poolSize: number;
  gatewaySecret: string;
  logLevel: string;
  /** The service's stdout (pino, one line per request at info) is written here rather than piped to the bench. */
  logFile: string;
  /** Directory holding the service's src/ (default: this checkout), e.g. a copy of an earlier version to compare. */
  serviceDir?: string;
  /** Extra environment for the service (e.g. NOTIFY_CONCURRENCY for the delivery scenario). */
  env?: Record<string, string>;
  /** Run src/main.ts through tsx instead of the compiled dist/ (INSTALL.md's production way). */
  fromSource?: boolean;
}

const built = new Set<string>();

/** The node options of `npm run start:built` in `dir` (e.g. heap settings): the bench runs the service as production does. */
function productionNodeFlags(dir: string): string[] {
  const scripts = (JSON.parse(readFileSync(resolve(dir, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {};
  const words = (scripts['start:built'] ?? '').split(/\s+/);
  return words[0] === 'node' ? words.slice(1).filter((w) => w.startsWith('--')) : [];
}

/** Compiles the service in `dir` to dist/ once per bench run, as INSTALL.md does for production. */
function ensureBuilt(dir: string): void {
  if (built.has(dir)) return;
  process.stderr.write(`[bench] compiling ${dir} to dist/ (tsc -p tsconfig.build.json)\n`);
  execFileSync(process.execPath, [resolve(ROOT, 'node_modules/typescript/bin/tsc'), '-p', resolve(dir, 'tsconfig.build.json')], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  built.add(dir);
}

/** The METRICS_TOKEN of the services this bench starts (production refuses to start without one). */
export const BENCH_METRICS_TOKEN = randomBytes(24).toString('hex');

export async function startOurs(options: OursOptions): Promise<ServerChild> {
  const port = await freePort();
  const cwd = options.serviceDir ?? ROOT;
  if (existsSync(resolve(cwd, '.env')))
    process.stderr.write(`[bench] warning: ${resolve(cwd, '.env')} exists; the service reads it for anything not set here\n`);
  const env = {
    ...baseEnv(),
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: databaseUrl(options.mysqlUrl, OURS_DB),
    DATABASE_POOL_SIZE: String(options.poolSize),
    API_KEYS: options.apiKey,
    GATEWAY_SECRET: options.gatewaySecret,
    NOTIFY_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
    ADMIN_PASSWORD: randomBytes(24).toString('base64url'),
    SESSION_SECRET: randomBytes(48).toString('base64url'),
    METRICS_TOKEN: BENCH_METRICS_TOKEN,
    RATE_LIMIT_PER_MINUTE: '1000000',
    // The notify scenario's orders point at a sink on 127.0.0.1; a delivery loop may reach it.
    NOTIFY_ALLOW_PRIVATE_NETWORKS: 'true',
    LOG_LEVEL: options.logLevel,
    ...options.env,
  };
  // A file, not a pipe: thousands of log lines a second would otherwise be parsed by the load generator.
  if (!options.fromSource) ensureBuilt(cwd);
  const out = openSync(options.logFile, 'w');
  try {
    // BENCH_CPU_PROF_DIR: write a V8 CPU profile of the service there (for finding where its time goes).
    const profile = process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
    const entry = [...productionNodeFlags(cwd), ...(options.fromSource ? ['--import', 'tsx', 'src/main.ts'] : ['dist/src/main.js'])];
    // BENCH_NODE_FLAGS: extra node options for the service (e.g. heap settings to compare).
    const flags = process.env.BENCH_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? [];
    const proc = spawn(process.execPath, [...profile, ...flags, ...entry], { cwd, env, stdio: ['ignore', out, 'pipe'], detached: true });
    return track('ours', `http://127.0.0.1:${port}`, proc, options.logFile);
  } finally {
    closeSync(out);
  }
}

export async function startYardstick(mysqlUrl: string, gatewaySecret: string): Promise<ServerChild> {
  const port = await freePort();
  const env = {
    ...baseEnv(),
    NODE_PATH: resolve(ROOT, 'node_modules'),
    PORT: String(port),
    MYSQL_URL: databaseUrl(mysqlUrl, YARDSTICK_DB),
    GATEWAY_SECRET: gatewaySecret,
  };
  const script = resolve(YARDSTICK_DIR, 'minimal-notify.cjs');
  const proc = spawn(process.execPath, [script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  return track('yardstick', `http://127.0.0.1:${port}`, proc);
}

/** Polls `path` until it answers 200; fails when the child exits or `timeoutMs` passes. */
export async function waitUntilAnswering(child: ServerChild, path: string, headers: Record<string, string>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.exit !== null) throw new Error(`${child.name} exited (${child.exit}) before answering:\n${child.tail().join('\n')}`);
    try {
      const res = await fetch(child.origin + path, { headers, signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(150);
  }
  throw new Error(`${child.name} did not answer ${path} within ${timeoutMs / 1000} s (${last}):\n${child.tail().join('\n')}`);
}

/** Line count and last lines of a child's log file (streamed: it can hold hundreds of thousands of lines). */
export async function logFileSummary(path: string | null, tailLines = 3): Promise<{ lines: number; bytes: number; tail: string[] } | null> {
  if (!path || !existsSync(path)) return null;
  let lines = 0;
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    const buf = chunk as Buffer;
    bytes += buf.length;
    for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) lines += 1;
  }
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 16_384);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    const tail = buf.toString('utf8').split('\n');
    if (length < size) tail.shift(); // the first line read is probably cut
    return { lines, bytes, tail: tail.filter((l) => l.trim() !== '').slice(-tailLines) };
  } finally {
    closeSync(fd);
  }
}

export function removeLogFile(path: string | null): void {
  if (!path) return;
  // BENCH_KEEP_LOG: keep the service's stdout there instead (e.g. with BENCH_NODE_FLAGS=--trace-gc, to read its GC trace).
  if (process.env.BENCH_KEEP_LOG && existsSync(path)) copyFileSync(path, process.env.BENCH_KEEP_LOG);
  rmSync(path, { force: true });
}
