import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createPlainHttpServer, IncomingMessage, request as httpRequest, ServerResponse, type Server } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDotEnv } from '../src/config.ts';
import { closeServer, createServer, listen } from '../src/server.ts';
import { PROJECT_ROOT } from '../src/shared/paths.ts';
import { createTestContext } from './helpers/context.ts';

const TSX = join(PROJECT_ROOT, 'node_modules/.bin/tsx');
const dir = mkdtempSync(join(tmpdir(), 'pcs-server-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer().once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

interface Service {
  port: number;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  kill(signal: NodeJS.Signals): void;
}

/** Runs `tsx src/main.ts` with exactly `env` (plus PATH), as an operator would. */
async function start(env: Record<string, string>): Promise<Service> {
  const port = await freePort();
  const child = spawn(TSX, ['src/main.ts'], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  children.push(child);
  return {
    port,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: (signal) => child.kill(signal),
    async waitFor(pattern, ms = 20_000) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        const match = pattern.exec(out);
        if (match) return match;
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no ${pattern} in stdout:\n${out}\nstderr:\n${err}`);
    },
  };
}

const withTimeout = <T>(promise: Promise<T>, ms: number, what: string) =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms))]);

const getOrders = (port: number, key: string) => fetch(`http://127.0.0.1:${port}/api/orders`, { headers: { 'X-API-Key': key } });

describe('the service process (tsx src/main.ts)', () => {
  const db = `sqlite:${join(dir, 'dev.db')}`;
  let apiKey = '';

  it('on a first development start prints where it listens and the generated API key and admin password', async () => {
    const svc = await start({ DATABASE_URL: db });
    await svc.waitFor(new RegExp(`listening on http://127\\.0\\.0\\.1:${svc.port} \\(development, sqlite\\)`));
    apiKey = (await svc.waitFor(/API key:\s+(\S+)/))[1]!;
    const password = (await svc.waitFor(/Admin password:\s+(\S+)/))[1]!;
    expect(apiKey).toMatch(/^pcs_/);
    expect(password.length).toBeGreaterThanOrEqual(12);
    expect((await getOrders(svc.port, apiKey)).status).toBe(200);
    expect((await getOrders(svc.port, `${apiKey}x`)).status).toBe(401);
    svc.kill('SIGTERM');
    expect(await withTimeout(svc.exited, 10_000, 'shutdown')).toBe(0);
  });

  it('on a second start over the same database prints no secrets, and the first key still works', async () => {
    expect(apiKey).not.toBe('');
    const svc = await start({ DATABASE_URL: db });
    await svc.waitFor(/listening on /);
    expect((await getOrders(svc.port, apiKey)).status).toBe(200);
    expect(svc.stdout()).not.toMatch(/API key:|Admin password:|Also generated/);
    svc.kill('SIGTERM');
    expect(await withTimeout(svc.exited, 10_000, 'shutdown')).toBe(0);
  });

  it('on SIGTERM finishes an in-flight request, then exits 0 within 10 s', async () => {
    const svc = await start({ DATABASE_URL: db, API_KEYS: 'sigterm-test-key' });
    await svc.waitFor(/listening on /);
    const body = JSON.stringify({ amount: '12.34', order_no: 'SIGTERM-1' });
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: svc.port,
          method: 'POST',
          path: '/api/orders',
          agent: false,
          headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-API-Key': 'sigterm-test-key' },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 10)); // the request is in flight: headers sent, body incomplete
      setTimeout(() => {
        svc.kill('SIGTERM');
        setTimeout(() => req.end(body.slice(10)), 500);
      }, 300);
    });
    const started = Date.now();
    const res = await response;
    expect(res.status).toBe(201);
    expect(JSON.parse(res.body)).toMatchObject({ success: true, data: { order_no: 'SIGTERM-1' } });
    expect(await withTimeout(svc.exited, 10_000, 'shutdown')).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('in production without secrets exits 1 listing each missing secret on its own line, without listening', async () => {
    const file = join(dir, 'prod.db');
    const svc = await start({ NODE_ENV: 'production', DATABASE_URL: `sqlite:${file}` });
    expect(await withTimeout(svc.exited, 20_000, 'exit')).toBe(1);
    const lines = svc.stderr().split('\n');
    for (const name of ['GATEWAY_SECRET', 'NOTIFY_SECRET', 'ADMIN_PASSWORD', 'SESSION_SECRET']) {
      expect(lines.filter((line) => line.includes(name))).toEqual([expect.stringMatching(new RegExp(`^\\s*- ${name}: required in production`))]);
    }
    expect(svc.stdout()).not.toMatch(/listening/);
    expect(existsSync(file)).toBe(false);
  });

  it('with invalid values exits 1 with one message naming each of them', async () => {
    const svc = await start({ DATABASE_URL: db, PORT: 'abc', NOTIFY_RETRY_SCHEDULE: '5x', API_IP_ALLOWLIST: '999.1.1.1' });
    expect(await withTimeout(svc.exited, 20_000, 'exit')).toBe(1);
    const stderr = svc.stderr();
    expect(stderr.match(/Invalid configuration/g)).toHaveLength(1);
    expect(stderr).toMatch(/^\s*- PORT: /m);
    expect(stderr).toMatch(/^\s*- NOTIFY_RETRY_SCHEDULE: .*5x/m);
    expect(stderr).toMatch(/^\s*- API_IP_ALLOWLIST: .*999\.1\.1\.1/m);
    expect(svc.stdout()).not.toMatch(/listening/);
  });
});

describe('requests and responses born with the app prototypes', () => {
  /** Serves one POST through `server` and reports, before Express saw them, whether req/res already had the app's prototypes. */
  async function probe(server: Server, app: { request: object; response: object }) {
    const seen: boolean[][] = [];
    server.prependListener('request', (req, res) =>
      seen.push([
        Object.getPrototypeOf(req) === app.request,
        Object.getPrototypeOf(res) === app.response,
        req instanceof IncomingMessage,
        res instanceof ServerResponse,
      ]),
    );
    try {
      const { port } = await listen(server, 0, '127.0.0.1');
      const res = await fetch(`http://127.0.0.1:${port}/notify`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'order_no=X1&sign=bad',
      });
      return { seen, status: res.status, body: (await res.json()) as { code?: string } };
    } finally {
      await closeServer(server, 1000);
    }
  }

  it('the service server builds them so that Express has nothing to re-parent, and they still serve as usual', async () => {
    const ctx = await createTestContext('sqlite');
    try {
      const result = await probe(createServer(ctx.app, ctx.config), ctx.app);
      expect(result.seen).toEqual([[true, true, true, true]]);
      // The full stack ran on them: parsing, verification, the error envelope.
      expect({ status: result.status, code: result.body.code }).toEqual({ status: 401, code: 'bad_signature' });
      // A plain Node server (as supertest makes) does not: the probe tells the two apart.
      expect((await probe(createPlainHttpServer(ctx.app), ctx.app)).seen).toEqual([[false, false, true, true]]);
    } finally {
      await ctx.close();
    }
  });
});

describe('native HTTPS (TLS_CERT_FILE / TLS_KEY_FILE)', () => {
  it('serves HTTPS with HSTS', async () => {
    const keyFile = join(dir, 'key.pem');
    const certFile = join(dir, 'cert.pem');
    execFileSync(
      '/usr/bin/openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', keyFile, '-out', certFile],
      { stdio: 'ignore' },
    );
    const ca = readFileSync(certFile);
    const ctx = await createTestContext('sqlite', { env: { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile } });
    const server = createServer(ctx.app, ctx.config);
    const bornWithAppPrototypes: boolean[] = [];
    server.prependListener('request', (req) => bornWithAppPrototypes.push(Object.getPrototypeOf(req) === ctx.app.request));
    try {
      const { port } = await listen(server, 0, '127.0.0.1');
      const get = (options: { ca?: Buffer }) =>
        new Promise<{ status: number; hsts?: string }>((resolve, reject) => {
          httpsGet({ host: '127.0.0.1', port, path: '/healthz', servername: 'localhost', agent: false, ...options }, (res) => {
            res.resume();
            resolve({ status: res.statusCode ?? 0, hsts: res.headers['strict-transport-security'] });
          }).on('error', reject);
        });
      const res = await get({ ca });
      expect(res.status).toBe(200);
      expect(res.hsts).toMatch(/max-age=31536000/);
      expect(bornWithAppPrototypes).toEqual([true]);
      // An untrusted certificate is refused by a normal client, and plain HTTP is not served.
      await expect(get({})).rejects.toThrow(/self[- ]signed/i);
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    } finally {
      await closeServer(server, 1000);
      await ctx.close();
    }
  });
});

describe('loadDotEnv', () => {
  it('reads a .env file, and real environment variables win over it', () => {
    const file = join(dir, 'test.env');
    writeFileSync(file, 'PCS_DOTENV_FROM_FILE=file\nPCS_DOTENV_BOTH=file\nPCS_DOTENV_QUOTED="a b # c"\n');
    process.env.PCS_DOTENV_BOTH = 'real';
    try {
      loadDotEnv(file);
      expect(process.env.PCS_DOTENV_FROM_FILE).toBe('file');
      expect(process.env.PCS_DOTENV_BOTH).toBe('real');
      expect(process.env.PCS_DOTENV_QUOTED).toBe('a b # c');
    } finally {
      for (const name of ['PCS_DOTENV_FROM_FILE', 'PCS_DOTENV_BOTH', 'PCS_DOTENV_QUOTED']) delete process.env[name];
    }
  });

  it('does nothing when the file does not exist', () => {
    const before = { ...process.env };
    expect(() => loadDotEnv(join(dir, 'missing.env'))).not.toThrow();
    expect(process.env).toEqual(before);
  });
});
