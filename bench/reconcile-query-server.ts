import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

/**
 * A stand-in gateway answering the generic query protocol, run by bench/reconcile.ts as its own process
 * (its CPU is not the service's nor the load generator's). Env: GATEWAY_SECRET, QUERY_PAID_PREFIX.
 * `POST /query` form {order_no, timestamp, nonce, sign_type, sign}: the signature is checked with code written
 * here, independent of the service's; an order number `<QUERY_PAID_PREFIX>…_<amount_minor>_<n>` is answered
 * `success` with that amount (CNY), any other `pending`. `GET /stats`: the counts as JSON.
 * Prints `listening <port>` on stdout once it listens on 127.0.0.1 (port 0: the system picks).
 */

const SECRET = process.env.GATEWAY_SECRET ?? '';
const PAID_PREFIX = process.env.QUERY_PAID_PREFIX ?? '';
if (SECRET.length < 8 || PAID_PREFIX === '') {
  process.stderr.write('reconcile-query-server: GATEWAY_SECRET and QUERY_PAID_PREFIX are required\n');
  process.exit(2);
}
const WINDOW_S = 300;

/** The heritage signature: every parameter but `sign` with a non-empty value, sorted by key (byte order), `k=v&…&key=<secret>`. */
function heritageSign(params: Record<string, string>, secret: string, signType: string): string {
  const text = Object.keys(params)
    .filter((k) => k !== 'sign' && params[k] !== '')
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  const signed = `${text}&key=${secret}`;
  const digest = signType === 'HMAC-SHA256' ? createHmac('sha256', secret).update(signed, 'utf8') : createHash('md5').update(signed, 'utf8');
  return digest.digest('hex').toUpperCase();
}

const stats = {
  queries: 0,
  answered_success: 0,
  answered_pending: 0,
  rejected: {} as Record<string, number>,
  sign_types: {} as Record<string, number>,
  /** Queries about an order already asked: a seeded order is paid by its first answer, so it should be asked once. */
  repeated_orders: 0,
  repeated_seeded_orders: 0,
};
const asked = new Set<string>();

function reject(kind: string): { status: number; body: string } {
  stats.rejected[kind] = (stats.rejected[kind] ?? 0) + 1;
  return { status: 400, body: JSON.stringify({ error: kind }) };
}

function answer(form: URLSearchParams): { status: number; body: string } {
  const params: Record<string, string> = {};
  for (const [key, value] of form) {
    if (key in params) return reject('repeated_parameter');
    params[key] = value;
  }
  const signType = params.sign_type || 'MD5';
  if (signType !== 'MD5' && signType !== 'HMAC-SHA256') return reject('bad_sign_type');
  const expected = Buffer.from(heritageSign(params, SECRET, signType));
  const given = Buffer.from((params.sign ?? '').toUpperCase());
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return reject('bad_signature');
  const now = Math.floor(Date.now() / 1000);
  if (!/^\d{1,12}$/.test(params.timestamp ?? '') || Math.abs(now - Number(params.timestamp)) > WINDOW_S) return reject('stale');
  const orderNo = params.order_no ?? '';
  if (orderNo === '') return reject('no_order_no');
  stats.queries += 1;
  stats.sign_types[signType] = (stats.sign_types[signType] ?? 0) + 1;
  const paid = orderNo.startsWith(PAID_PREFIX) ? /_(\d+)_[0-9a-z]+$/.exec(orderNo) : null;
  if (asked.has(orderNo)) {
    stats.repeated_orders += 1;
    if (paid) stats.repeated_seeded_orders += 1;
  } else asked.add(orderNo);
  const fields: Record<string, string> = paid
    ? { order_no: orderNo, status: 'success', amount: (Number(paid[1]) / 100).toFixed(2), currency: 'CNY', transaction_id: `Q${orderNo}` }
    : { order_no: orderNo, status: 'pending' };
  if (paid) stats.answered_success += 1;
  else stats.answered_pending += 1;
  const body: Record<string, string> = { ...fields, timestamp: String(now), sign_type: signType };
  return { status: 200, body: JSON.stringify({ ...body, sign: heritageSign(body, SECRET, signType) }) };
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/query') {
      res.writeHead(404).end();
      return;
    }
    const { status, body } = answer(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
