// Merchant notification receiver for the payment callback service (Node built-ins only).
//
//   PORT=4001 NOTIFY_SECRET=whsec_... node examples/node/receiver.mjs
//
// Answers 200 "success" to a notification that passes every check below, 4xx to anything else.
// See examples/README.md for the algorithm and the environment variables.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TOLERANCE_SECONDS = 300;
const MAX_BODY_BYTES = 64 * 1024;
const SIGN_TYPES = ['MD5', 'HMAC-SHA256'];
const EVENT_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const UNIX_SECONDS = /^[0-9]{1,12}$/;

function fatal(message) {
  console.error(message);
  process.exit(1);
}

const secret = process.env.NOTIFY_SECRET ?? '';
const base64Part = secret.slice('whsec_'.length);
if (!secret.startsWith('whsec_') || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64Part))
  fatal("NOTIFY_SECRET must be set to the service's NOTIFY_SECRET (whsec_<base64>)");
const webhookKey = Buffer.from(base64Part, 'base64');
const pinned = process.env.NOTIFY_SIGN_TYPE || null;
if (pinned !== null && !SIGN_TYPES.includes(pinned)) fatal('NOTIFY_SIGN_TYPE must be MD5 or HMAC-SHA256 when set');
const seenFile = process.env.SEEN_EVENTS_FILE || join(tmpdir(), 'payment-notify-seen-events.txt');

class Rejected extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

const log = (line) => console.error(line);

/** Constant-time equality of two strings (false at once when the lengths differ, which is no secret). */
function safeEqual(a, b) {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

function checkWindow(what, seconds) {
  if (Math.abs(Date.now() / 1000 - seconds) > TOLERANCE_SECONDS)
    throw new Rejected(401, `${what} is more than ${TOLERANCE_SECONDS} s away from this server's clock`);
}

/** Standard Webhooks: v1,base64(hmac_sha256(base64decode(secret without whsec_), "id.timestamp.body")). */
function verifyWebhookSignature(headers, raw) {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (!id || !timestamp || !signatures) throw new Rejected(400, 'missing webhook-id, webhook-timestamp or webhook-signature header');
  if (!UNIX_SECONDS.test(timestamp)) throw new Rejected(400, 'webhook-timestamp is not unix seconds');
  const expected = createHmac('sha256', webhookKey).update(`${id}.${timestamp}.`, 'latin1').update(raw).digest('base64');
  // The header may carry several space-separated signatures (key rotation): any v1 match counts.
  const matched = signatures.split(' ').some((candidate) => {
    const comma = candidate.indexOf(',');
    return comma > 0 && candidate.slice(0, comma) === 'v1' && safeEqual(candidate.slice(comma + 1), expected);
  });
  if (!matched) throw new Rejected(401, 'webhook-signature does not match');
  checkWindow('webhook-timestamp', Number(timestamp));
  return id;
}

/** A field as the service signed it: strings as they are, numbers as JSON writes them, true/false. */
function fieldText(name, value) {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value); // the text JSON.stringify writes
  if (typeof value === 'boolean') return String(value);
  throw new Rejected(400, `field ${name} is an object or array: not something the service signs`);
}

/** A5/A7: every field but sign that is not null or empty, sorted by name in byte order, k=v&...&key=<secret>. */
function expectedSign(body, signType) {
  const text =
    Object.keys(body)
      .filter((name) => name !== 'sign' && body[name] !== null && body[name] !== '')
      .sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))
      .map((name) => `${name}=${fieldText(name, body[name])}`)
      .join('&') + `&key=${secret}`;
  const digest = signType === 'MD5' ? createHash('md5') : createHmac('sha256', secret);
  return digest.update(text, 'utf8').digest('hex').toUpperCase();
}

function verifySign(body) {
  const signType = body.sign_type || 'MD5';
  if (!SIGN_TYPES.includes(signType)) throw new Rejected(400, 'sign_type is not MD5 or HMAC-SHA256');
  if (pinned && signType !== pinned) throw new Rejected(401, `sign_type ${signType} is not the configured ${pinned}`);
  if (typeof body.sign !== 'string' || body.sign === '') throw new Rejected(401, 'sign is missing');
  if (!safeEqual(body.sign.toUpperCase(), expectedSign(body, signType))) throw new Rejected(401, 'sign does not match');
}

/**
 * Processes the event unless its event_id was processed before; true when it ran now. Everything here is
 * synchronous, so one Node process never interleaves two checks (several processes would need a database).
 */
function processOnce(body) {
  let seen = '';
  try {
    seen = readFileSync(seenFile, 'utf8');
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  if (seen.split('\n').includes(body.event_id)) return false;
  // Your business logic goes here: look the order up, check amount and currency, mark it paid.
  log(`processed ${body.type} order_no=${body.order_no} status=${body.status} amount=${body.amount} ${body.currency} event_id=${body.event_id}`);
  appendFileSync(seenFile, `${body.event_id}\n`);
  return true;
}

function handleNotification(headers, raw) {
  const webhookId = verifyWebhookSignature(headers, raw);
  let body;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new Rejected(400, `body is not JSON: ${err.message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Rejected(400, 'body is not a JSON object');
  if (typeof body.event_id !== 'string' || !EVENT_ID.test(body.event_id)) throw new Rejected(400, 'event_id is missing or malformed');
  if (webhookId !== body.event_id) throw new Rejected(400, "webhook-id is not the body's event_id");
  verifySign(body);
  if (!Number.isSafeInteger(body.timestamp) || body.timestamp < 0) throw new Rejected(400, 'timestamp is missing or not unix seconds');
  checkWindow('timestamp', body.timestamp);
  if (!processOnce(body)) log(`duplicate event_id=${body.event_id}: already processed, answering success again`);
}

function answer(res, status, text, headers = {}) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(text);
}

const server = createServer((req, res) => {
  if (req.method !== 'POST') {
    req.resume();
    return answer(res, 405, 'fail: POST only', { allow: 'POST' });
  }
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  req.on('end', () => {
    try {
      if (size > MAX_BODY_BYTES) throw new Rejected(413, 'body is too large');
      handleNotification(req.headers, Buffer.concat(chunks));
    } catch (err) {
      if (!(err instanceof Rejected)) {
        log(`error: ${err.stack ?? err}`);
        return answer(res, 500, 'fail: internal error'); // a failure of ours: the service retries later
      }
      log(`rejected: ${err.message}`);
      return answer(res, err.status, `fail: ${err.message}`);
    }
    answer(res, 200, 'success');
  });
});

const host = process.env.HOST || '127.0.0.1';
const port = Number(process.env.PORT || 4001);
server.listen(port, host, () => log(`notification receiver listening on http://${host}:${port} (seen events: ${seenFile})`));
