import { randomBytes } from 'node:crypto';
import { ConfigError, loadConfig, loadDotEnv } from '../config.ts';
import { openDatabase } from '../db/database.ts';
import { isOrderNo, ORDER_NO_RULE } from '../orders/order-number.ts';
import { findOrderByNo } from '../orders/order.repository.ts';
import { formatAmount } from '../shared/money.ts';
import { computeSign } from '../shared/signing.ts';
import { pickGatewaySecret, storedGatewaySecret } from '../system/doctor.payment.ts';

/**
 * `npm run trigger -- <order_no> [paid|failed] [--url <base>]`: a correctly signed generic notification for an
 * order of this host's database, sent to a running instance — a stand-in for the gateway in local development.
 */

const USAGE = `Usage: npm run trigger -- <order_no> [paid|failed] [--url <base>] [--gateway-secret <secret>]
  Sends a signed generic notification (POST <base>/notify) that pays (default) or fails the order.
  The order's amount and currency are read from DATABASE_URL's database; the signing key is
  GATEWAY_SECRET (--gateway-secret, else the environment or .env, else in development the one
  the service generated and stored). <base> defaults to http://localhost:<PORT>.`;

interface Options {
  orderNo: string;
  outcome: 'paid' | 'failed';
  url?: string;
  gatewaySecret?: string;
}

function parseArgs(args: string[]): Options | { error: string } | 'help' {
  const positional: string[] = [];
  const options: Partial<Options> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--help' || arg === '-h') return 'help';
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    if (flag === '--url' || flag === '--gateway-secret') {
      const value = inline ?? args[++i];
      if (!value) return { error: `${flag} needs a value` };
      if (flag === '--url') options.url = value.replace(/\/+$/, '');
      else options.gatewaySecret = value;
    } else if (arg.startsWith('-')) return { error: `unknown option ${flag}` };
    else positional.push(arg);
  }
  const [orderNo, outcome = 'paid', extra] = positional;
  if (!orderNo || extra !== undefined) return { error: 'give one order number, then optionally paid or failed' };
  if (!isOrderNo(orderNo)) return { error: `the order number ${ORDER_NO_RULE}` };
  if (outcome !== 'paid' && outcome !== 'failed') return { error: `the outcome must be paid or failed, not ${JSON.stringify(outcome)}` };
  if (options.url && !/^https?:\/\/[^/]+/.test(options.url)) return { error: '--url must be an absolute http:// or https:// URL' };
  return { ...options, orderNo, outcome };
}

async function run(args: string[]): Promise<number> {
  const options = parseArgs(args);
  if (options === 'help' || 'error' in options) {
    if (options === 'help') console.log(USAGE);
    else console.error(`trigger: ${options.error}\n${USAGE}`);
    return options === 'help' ? 0 : 2;
  }
  loadDotEnv();
  const config = loadConfig();
  const db = openDatabase(config.database.url, { poolSize: 1 });
  let order, stored;
  try {
    order = await findOrderByNo(db.kysely, options.orderNo);
    stored = config.production ? undefined : await storedGatewaySecret(db);
  } finally {
    await db.close();
  }
  if (!order) {
    console.error(`trigger: order ${options.orderNo} is not in this host's database (DATABASE_URL); create it first`);
    return 1;
  }
  const secret = pickGatewaySecret(options.gatewaySecret, process.env.GATEWAY_SECRET, stored);
  if (!secret) {
    console.error('trigger: no GATEWAY_SECRET is known here: set GATEWAY_SECRET=… or pass --gateway-secret …');
    return 1;
  }
  const params = {
    order_no: order.order_no,
    transaction_id: `TRIGGER${Date.now()}${randomBytes(3).toString('hex').toUpperCase()}`,
    amount: formatAmount(order.amount_minor, order.currency),
    currency: order.currency,
    status: options.outcome === 'paid' ? 'success' : 'failed',
    timestamp: String(Math.floor(Date.now() / 1000)),
    nonce: randomBytes(16).toString('hex'),
    sign_type: 'HMAC-SHA256',
  };
  const body = new URLSearchParams({ ...params, sign: computeSign(params, secret.value, 'HMAC-SHA256') }).toString();
  const target = `${options.url ?? `http://localhost:${config.port}`}/notify`;
  console.log(
    `POST ${target}\nContent-Type: application/x-www-form-urlencoded\n(signed with the GATEWAY_SECRET ${secret.source})\n\n${body.replace(/sign=[0-9A-F]+/, 'sign=…')}\n`,
  );
  const res = await fetch(target, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(10_000),
  });
  console.log(`HTTP ${res.status}\n${await res.text()}`);
  return res.ok ? 0 : 1;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message =
      err instanceof ConfigError
        ? err.message
        : err instanceof Error
          ? `${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}`
          : String(err);
    console.error(`trigger failed: ${message}`);
    process.exit(1);
  },
);
