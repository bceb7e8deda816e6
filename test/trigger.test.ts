import { spawn } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';

/** `npm run trigger` as a developer runs it: a child process against a listening instance on the same database. */

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');

function trigger(env: Record<string, string>, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSX, ['src/cli/trigger.ts', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, TZ: 'UTC', ...env } as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.on('error', reject);
    child.on('close', (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })));
  });
}

describe.each(ENGINES)('npm run trigger on %s', (engine) => {
  let ctx: TestContext;
  let server: Server;
  let base: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
    server = ctx.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    env = { NODE_ENV: 'test', DATABASE_URL: ctx.database.url, GATEWAY_SECRET: TEST_GATEWAY_SECRET };
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await ctx.close();
  });
  const status = async (no: string) => (await ctx.db.kysely.selectFrom('orders').select('status').where('order_no', '=', no).executeTakeFirstOrThrow()).status;

  it('pays an order with a signed notification and shows the request and the answer', async () => {
    expect((await ctx.api('post', '/api/orders').send({ order_no: 'TRG1', amount: '12.30', currency: 'USD' })).status).toBe(201);
    const run = await trigger(env, ['TRG1', '--url', base]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain(`POST ${base}/notify`);
    expect(run.stdout).toContain('amount=12.30&currency=USD');
    expect(run.stdout).toContain('HTTP 200');
    expect(run.stdout).toContain('"status":"paid"');
    expect(await status('TRG1')).toBe('paid');
  });

  it('fails an order with "failed"', async () => {
    expect((await ctx.api('post', '/api/orders').send({ order_no: 'TRG2', amount: '1' })).status).toBe(201);
    const run = await trigger(env, ['TRG2', 'failed', `--url=${base}`]);
    expect(run.code, run.stderr).toBe(0);
    expect(await status('TRG2')).toBe('failed');
  });

  it('exits 1 with the server’s refusal when the secret is not the server’s, and 2 on bad arguments', async () => {
    expect((await ctx.api('post', '/api/orders').send({ order_no: 'TRG3', amount: '1' })).status).toBe(201);
    const wrong = await trigger({ ...env, GATEWAY_SECRET: 'not-the-servers-secret-0123456789' }, ['TRG3', '--url', base]);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toContain('HTTP 401');
    expect(await status('TRG3')).toBe('pending');
    expect((await trigger(env, ['TRG3', 'refunded', '--url', base])).code).toBe(2);
    expect((await trigger(env, [])).code).toBe(2);
    const missing = await trigger(env, ['NO_SUCH_ORDER', '--url', base]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('NO_SUCH_ORDER is not in');
  });
});
