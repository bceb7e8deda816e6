import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/shared/paths.ts';
import { startService, stopAllServices, waitUntil, type ServiceProcess } from './helpers/service-process.ts';

/**
 * The README's five-step tour, run verbatim with bash against a freshly started development service: only
 * the base URL and the API key are substituted, so a reader who copies the commands gets these results.
 */

/** The shell blocks marked `<!-- tour -->` in the README, in order. */
function tourBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/<!-- tour -->\r?\n```sh\r?\n([\s\S]*?)\r?\n```/g)].map((m) => m[1]!);
}

interface Run {
  code: number | null;
  steps: string[];
  output: string;
}

/** One bash process, so `KEY` set by the first block holds for the others; a marker line separates the steps. */
function runTour(blocks: string[], env: Record<string, string>): Promise<Run> {
  const script = blocks.map((block, i) => `echo '@@tour-step-${i}@@'\n${block}`).join('\n') + '\necho "@@tour-end@@"\n';
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const steps = output.split(/@@tour-step-\d+@@\n/).slice(1);
      if (steps.length > 0) steps[steps.length - 1] = steps.at(-1)!.split('@@tour-end@@')[0]!;
      resolve({ code, steps, output });
    });
  });
}

const jsonLines = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { success: boolean; data: Record<string, unknown> });

describe('README tour', () => {
  let dir: string;
  let service: ServiceProcess;
  let run: Run;
  let apiKey: string;
  let adminPassword: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'readme-tour-'));
    const databaseUrl = `sqlite:${join(dir, 'payments.db')}`;
    // No NODE_ENV and no secrets: a development start that generates and prints the API key, as `npm start` does.
    service = await startService('readme-tour', { DATABASE_URL: databaseUrl });
    // The generated secrets are printed just after the "listening" line, possibly in a later chunk.
    const printed = await waitUntil(
      'the generated secrets to be printed',
      () => /API key:\s+(pcs_\S+)[\s\S]*Admin password:\s+(\S+)/.exec(service.output()),
      10_000,
      50,
      () => service.output(),
    );
    apiKey = printed[1]!;
    adminPassword = printed[2]!;

    const blocks = tourBlocks(readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8'));
    expect(blocks, 'the README marks the key block and one block per step with <!-- tour -->').toHaveLength(6);
    expect(blocks[0]).toMatch(/^KEY=/m);
    const substituted = blocks.map((block, i) =>
      (i === 0 ? block.replace(/^KEY=.*$/m, `KEY='${apiKey}'`) : block).replaceAll('http://localhost:3000', service.baseUrl),
    );
    // The environment a reader's shell has, plus what points npm run trigger / secrets at this instance
    // (their defaults, PORT=3000 and ./data/payments.db, are what a fresh npm start uses).
    run = await runTour(substituted, {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? dir,
      TZ: 'UTC',
      DATABASE_URL: databaseUrl,
      PORT: String(service.port),
    });
    expect(run.steps, run.output).toHaveLength(6);
  }, 90_000);

  afterAll(async () => {
    await stopAllServices();
    rmSync(dir, { recursive: true, force: true });
  });

  it('1: creates order DEMO-1001 (201) with its notify_url', () => {
    const step = run.steps[1]!;
    expect(step, run.output).toMatch(/^HTTP 201$/m);
    const [created] = jsonLines(step);
    expect(created?.data).toMatchObject({ order_no: 'DEMO-1001', status: 'pending', notify_url: 'http://127.0.0.1:4001/notify' });
  });

  it('2: npm run trigger pays it with a signed notification', () => {
    const step = run.steps[2]!;
    expect(step, run.output).toContain(`POST http://localhost:${service.port}/notify`);
    expect(step).toMatch(/^HTTP 200$/m);
    expect(jsonLines(step).at(-1)).toMatchObject({ success: true, data: { order_no: 'DEMO-1001', status: 'paid' } });
  });

  it('3: the order detail and the heritage status query show it paid, with its payment and notification', () => {
    const [detail, status] = jsonLines(run.steps[3]!);
    expect(detail?.data, run.output).toMatchObject({ order_no: 'DEMO-1001', status: 'paid', rejected_callbacks: { total: 0 } });
    expect(detail?.data.payments).toEqual([expect.objectContaining({ verdict: 'applied', gateway: 'generic' })]);
    expect(detail?.data.notifications).toEqual([expect.objectContaining({ type: 'order.paid', seq: 1, url: 'http://127.0.0.1:4001/notify' })]);
    expect(status).toEqual({ success: true, data: { order_no: 'DEMO-1001', status: 'paid' }, message: 'ok' });
  });

  it('4: resending its notification is accepted (202)', () => {
    const step = run.steps[4]!;
    expect(step, run.output).toMatch(/^HTTP 202$/m);
    expect(jsonLines(step)[0]?.data).toMatchObject({ order_no: 'DEMO-1001', event_id: expect.stringMatching(/^evt_/) });
  });

  it('5: /admin leads to the console login page (200) and npm run secrets shows the admin password', () => {
    const step = run.steps[5]!;
    expect(step, run.output).toContain(`200 ${service.baseUrl}/admin/login`);
    expect(step).toMatch(new RegExp(`ADMIN_PASSWORD\\s+generated: ${adminPassword.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  });
});
