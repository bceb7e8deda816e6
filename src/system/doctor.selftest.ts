import { randomBytes } from 'node:crypto';
import { errorText, fail, pass, type CheckResult } from './doctor.checks.ts';
import { appliedPaymentProblem, missingSecretDetail, notifyHint, signedNotification, type GatewaySecret, type Payment } from './doctor.payment.ts';

/** `npm run doctor -- --url <base> --api-key <key>`: an end-to-end run against a live instance over HTTP. */

const TIMEOUT_MS = 10_000;

type Data = Record<string, unknown>;

interface Reply {
  status: number;
  body: { success?: boolean; data?: Data; code?: string; message?: string } | null;
  ms: number;
}

type Payload = { json: unknown } | { form: Record<string, string> };

async function call(base: string, method: 'GET' | 'POST', path: string, apiKey?: string, payload?: Payload): Promise<Reply> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (apiKey) headers['x-api-key'] = apiKey;
  let body: string | undefined;
  if (payload && 'json' in payload) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(payload.json);
  } else if (payload) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(payload.form).toString();
  }
  const started = Date.now();
  const res = await fetch(base + path, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS) });
  const text = await res.text();
  let parsed: Reply['body'] = null;
  try {
    parsed = JSON.parse(text) as Reply['body'];
  } catch {
    // not JSON: reported through the status below
  }
  return { status: res.status, body: parsed, ms: Date.now() - started };
}

interface Step {
  method: 'GET' | 'POST';
  path: string;
  /** The line's name when it is not `<method> <path>`. */
  name?: string;
  auth: boolean;
  payload?: Payload;
  expect: number[];
  /** A problem with the response data, or null when it is what the step expects. */
  verify(data: Data): string | null;
  summary(data: Data): string;
  /** Advice appended to a rejection's line, by the server's error code. */
  hint?(code: string | undefined): string | null;
}

async function runStep(base: string, apiKey: string, step: Step): Promise<{ result: CheckResult; data: Data | null }> {
  const name = `self-test ${step.name ?? `${step.method} ${step.path}`}`;
  let reply: Reply;
  try {
    reply = await call(base, step.method, step.path, step.auth ? apiKey : undefined, step.payload);
  } catch (err) {
    return { result: fail(name, errorText(err)), data: null };
  }
  const { status, body, ms } = reply;
  if (!step.expect.includes(status) || body?.success !== true) {
    const why = body?.code ? `${body.code}: ${body.message ?? ''}` : body ? 'unexpected response' : 'not a JSON response';
    const hint = step.hint?.(body?.code);
    return { result: fail(name, `HTTP ${status} ${why} (${ms} ms)${hint ? ` — ${hint}` : ''}`), data: null };
  }
  const data = body.data ?? {};
  const problem = step.verify(data);
  return { result: problem ? fail(name, `HTTP ${status}, but ${problem}`) : pass(name, `HTTP ${status} ${step.summary(data)} (${ms} ms)`), data };
}

const mismatch = (data: Data, expected: Record<string, string>): string | null => {
  const wrong = Object.entries(expected).filter(([k, v]) => data[k] !== v);
  return wrong.length === 0 ? null : wrong.map(([k, v]) => `${k} is ${JSON.stringify(data[k])}, expected ${JSON.stringify(v)}`).join('; ');
};

/** A successful payment through `POST /notify` (A5), then the same notification again with a fresh nonce. */
function notifySteps(payment: Payment, secret: GatewaySecret): [Step, Step] {
  const notify = (name: string, summary: string): Step => ({
    method: 'POST',
    path: '/notify',
    name,
    auth: false,
    payload: { form: signedNotification(payment, secret.value) },
    expect: [200],
    verify: (d) => mismatch(d, { order_no: payment.orderNo, status: 'paid' }),
    summary: () => summary,
    hint: (code) => notifyHint(code, secret),
  });
  return [
    notify('POST /notify', `paid ${payment.orderNo} as ${payment.transactionId} (HMAC-SHA256 with the GATEWAY_SECRET ${secret.source})`),
    notify('POST /notify (duplicate)', 'the same notification again (fresh nonce) accepted, status paid'),
  ];
}

/**
 * Health, readiness, then an order's life: created through the API, paid by a signed generic notification,
 * the duplicate accepted, then read and queried as paid. Each step is one ✓/✗ line; without a GATEWAY_SECRET
 * or without an order the payment is one ✗ line, and the reads then expect the order still pending.
 */
export async function runSelfTest(baseUrl: string, apiKey: string, report: (result: CheckResult) => void, secret: GatewaySecret | null = null): Promise<void> {
  const base = baseUrl.replace(/\/+$/, '');
  const orderNo = `doctor_${Date.now()}_${randomBytes(3).toString('hex')}`;
  const order = { order_no: orderNo, amount: '0.01', currency: 'CNY' };
  const run = async (step: Step) => {
    const outcome = await runStep(base, apiKey, step);
    report(outcome.result);
    return outcome;
  };

  await run({ method: 'GET', path: '/healthz', auth: false, expect: [200], verify: () => null, summary: () => 'alive' });
  await run({ method: 'GET', path: '/readyz', auth: false, expect: [200], verify: () => null, summary: (d) => `ready (${String(d.database)})` });
  const created = await run({
    method: 'POST',
    path: '/api/orders',
    auth: true,
    payload: { json: { ...order, subject: 'npm run doctor self-test' } },
    expect: [201],
    verify: (d) => mismatch(d, { ...order, status: 'pending' }),
    summary: () => `created ${orderNo} (0.01 CNY)`,
  });

  const transactionId = `doctor-${Date.now()}`;
  let paid = false;
  if (!secret) report(fail('self-test POST /notify', missingSecretDetail(base)));
  else if (!created.result.ok) report(fail('self-test POST /notify', 'not attempted: the order was not created'));
  else {
    const payment: Payment = { orderNo, transactionId, amount: order.amount, currency: order.currency, timestamp: Math.floor(Date.now() / 1000) };
    const [first, again] = notifySteps(payment, secret);
    paid = (await run(first)).result.ok;
    if (paid) await run(again);
  }

  const expected = paid ? { ...order, status: 'paid', transaction_id: transactionId } : { ...order, status: 'pending' };
  await run({
    method: 'GET',
    path: `/api/orders/${orderNo}`,
    auth: true,
    expect: [200],
    verify: (d) => mismatch(d, expected) ?? (paid ? appliedPaymentProblem(d.payments, transactionId) : null),
    summary: (d) => `found, status ${String(d.status)}${paid ? `, payment ${transactionId} applied once` : ''}`,
  });
  await run({
    method: 'GET',
    path: `/query_order?action=status&order_no=${orderNo}`,
    auth: true,
    expect: [200],
    verify: (d) => mismatch(d, { order_no: orderNo, status: expected.status }),
    summary: (d) => `status ${String(d.status)}`,
  });
}
