import { randomBytes } from 'node:crypto';
import { errorText, fail, pass, type CheckResult } from './doctor.checks.ts';

/** `npm run doctor -- --url <base> --api-key <key>`: an end-to-end run against a live instance over HTTP. */

const TIMEOUT_MS = 10_000;

interface Reply {
  status: number;
  body: { success?: boolean; data?: Record<string, unknown>; code?: string; message?: string } | null;
  ms: number;
}

async function call(base: string, method: 'GET' | 'POST', path: string, apiKey?: string, json?: unknown): Promise<Reply> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (apiKey) headers['x-api-key'] = apiKey;
  if (json !== undefined) headers['content-type'] = 'application/json';
  const started = Date.now();
  const res = await fetch(base + path, {
    method,
    headers,
    body: json === undefined ? undefined : JSON.stringify(json),
    redirect: 'manual',
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  let body: Reply['body'] = null;
  try {
    body = JSON.parse(text) as Reply['body'];
  } catch {
    // not JSON: reported through the status below
  }
  return { status: res.status, body, ms: Date.now() - started };
}

interface Step {
  method: 'GET' | 'POST';
  path: string;
  auth: boolean;
  json?: unknown;
  expect: number[];
  /** A problem with the response data, or null when it is what the step expects. */
  verify(data: Record<string, unknown>): string | null;
  summary(data: Record<string, unknown>): string;
}

async function runStep(base: string, apiKey: string, step: Step): Promise<CheckResult> {
  const name = `self-test ${step.method} ${step.path}`;
  let reply: Reply;
  try {
    reply = await call(base, step.method, step.path, step.auth ? apiKey : undefined, step.json);
  } catch (err) {
    return fail(name, errorText(err));
  }
  const { status, body, ms } = reply;
  if (!step.expect.includes(status) || body?.success !== true) {
    const why = body?.code ? `${body.code}: ${body.message ?? ''}` : body ? 'unexpected response' : 'not a JSON response';
    return fail(name, `HTTP ${status} ${why} (${ms} ms)`);
  }
  const data = body.data ?? {};
  const problem = step.verify(data);
  return problem ? fail(name, `HTTP ${status}, but ${problem}`) : pass(name, `HTTP ${status} ${step.summary(data)} (${ms} ms)`);
}

const mismatch = (data: Record<string, unknown>, expected: Record<string, string>): string | null => {
  const wrong = Object.entries(expected).filter(([k, v]) => data[k] !== v);
  return wrong.length === 0 ? null : wrong.map(([k, v]) => `${k} is ${JSON.stringify(data[k])}, expected ${JSON.stringify(v)}`).join('; ');
};

/** Health, readiness, then an order's life through the API; each step is one ✓/✗ line. */
export async function runSelfTest(baseUrl: string, apiKey: string, report: (result: CheckResult) => void): Promise<void> {
  const base = baseUrl.replace(/\/+$/, '');
  const orderNo = `doctor_${Date.now()}_${randomBytes(3).toString('hex')}`;
  const order = { order_no: orderNo, amount: '0.01', currency: 'CNY' };
  const steps: Step[] = [
    { method: 'GET', path: '/healthz', auth: false, expect: [200], verify: () => null, summary: () => 'alive' },
    { method: 'GET', path: '/readyz', auth: false, expect: [200], verify: () => null, summary: (d) => `ready (${String(d.database)})` },
    {
      method: 'POST',
      path: '/api/orders',
      auth: true,
      json: { ...order, subject: 'npm run doctor self-test' },
      expect: [201],
      verify: (d) => mismatch(d, { ...order, status: 'pending' }),
      summary: () => `created ${orderNo} (0.01 CNY)`,
    },
    {
      method: 'GET',
      path: `/api/orders/${orderNo}`,
      auth: true,
      expect: [200],
      verify: (d) => mismatch(d, order),
      summary: (d) => `found, status ${String(d.status)}`,
    },
    {
      method: 'GET',
      path: `/query_order?action=status&order_no=${orderNo}`,
      auth: true,
      expect: [200],
      verify: (d) => mismatch(d, { order_no: orderNo, status: 'pending' }),
      summary: (d) => `status ${String(d.status)}`,
    },
    // Paying the order (sandbox or a signed generic /notify) and querying it as paid come here (later issue).
  ];
  for (const step of steps) report(await runStep(base, apiKey, step));
}
