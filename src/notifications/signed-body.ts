import { createHmac, createSecretKey, hash, randomBytes, type KeyObject } from 'node:crypto';
import { ambiguityOf, computeSign, type SignableValue, type SignType } from '../shared/signing.ts';

export const USER_AGENT = 'payment-callback-service/0.1 (merchant-notifications; +https://github.com/)';

/** The fields added to the stored event per attempt; a stored payload holding one of them takes the general path. */
const ADDED = ['timestamp', 'nonce', 'sign_type', 'sign'] as const;

/** Nonces come from a pooled random buffer: one randomBytes call per 340 deliveries instead of one each. */
const NONCE_BYTES = 12;
let noncePool = Buffer.alloc(0);
let nonceOffset = 0;
function nextNonce(): string {
  if (nonceOffset + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_BYTES * 340);
    nonceOffset = 0;
  }
  nonceOffset += NONCE_BYTES;
  return noncePool.toString('hex', nonceOffset - NONCE_BYTES, nonceOffset);
}

/** Keys derived from the secret once per secret, not per delivery: the A5 HMAC key and the Standard Webhooks key (its base64 part). */
let keys: { secret: string; sign: KeyObject; webhook: KeyObject } | undefined;
function keysOf(secret: string) {
  if (keys?.secret !== secret)
    keys = { secret, sign: createSecretKey(Buffer.from(secret, 'utf8')), webhook: createSecretKey(Buffer.from(secret.slice('whsec_'.length), 'base64')) };
  return keys;
}

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
/** A5's signing order (byte order of the keys) per payload shape, sorted once: every event of a kind has the same keys. */
const orders = new Map<string, readonly string[]>();
function signingOrder(payloadKeys: readonly string[]): readonly string[] {
  const shape = payloadKeys.join('\n');
  let order = orders.get(shape);
  if (!order) {
    order = [...payloadKeys, 'timestamp', 'nonce', 'sign_type'].sort(byteOrder);
    if (orders.size < 64) orders.set(shape, order);
  }
  return order;
}

/** A5's sign over `fields` in `order`: null and empty values skipped, numbers as JSON writes them, then `&key=<secret>`. */
function sign(fields: Readonly<Record<string, SignableValue>>, order: readonly string[], secret: string, signType: SignType): string {
  let text = '';
  for (const key of order) {
    const value = fields[key];
    if (value === null || value === undefined || value === '') continue;
    text += `${key}=${String(value)}&`;
  }
  text += `key=${secret}`;
  const digest = signType === 'MD5' ? hash('md5', text, 'hex') : createHmac('sha256', keysOf(secret).sign).update(text, 'utf8').digest('hex');
  return digest.toUpperCase();
}

/** The outbox's JSON text of a non-empty object without the added fields: the body is that text with them appended, not written again. */
function appendable(text: string, event: unknown): event is Record<string, SignableValue> {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return false;
  return (
    text.charCodeAt(0) === 0x7b && text.charCodeAt(text.length - 1) === 0x7d && !ADDED.some((k) => Object.hasOwn(event, k)) && Object.keys(event).length > 0
  );
}

/**
 * The A7 body of one attempt (the stored event fields, then timestamp, nonce, sign_type, sign) and its
 * Standard Webhooks headers. `payload` is the stored event, JSON as the outbox wrote it.
 */
export function signedDelivery(payload: string, settings: { secret: string; signType: SignType }, now: Date) {
  const event = JSON.parse(payload) as Record<string, SignableValue>;
  // The merchant verifies A5's string: a value that could re-split it must never be signed (inbound checks keep it out).
  const ambiguity = ambiguityOf(event);
  if (ambiguity) throw new Error(`refusing to sign an ambiguous notification: ${ambiguity}`);
  const timestamp = Math.floor(now.getTime() / 1000);
  const nonce = nextNonce();
  let body: string;
  if (appendable(payload, event)) {
    const order = signingOrder(Object.keys(event));
    event.timestamp = timestamp;
    event.nonce = nonce;
    event.sign_type = settings.signType;
    const signature = sign(event, order, settings.secret, settings.signType);
    // The same text JSON.stringify({...event, timestamp, nonce, sign_type, sign}) writes: nonce, type and sign are hex/ASCII.
    body = `${payload.slice(0, -1)},"timestamp":${timestamp},"nonce":"${nonce}","sign_type":"${settings.signType}","sign":"${signature}"}`;
  } else {
    const unsigned = { ...(event as object), timestamp, nonce, sign_type: settings.signType };
    body = JSON.stringify({ ...unsigned, sign: computeSign(unsigned, settings.secret, settings.signType) });
  }
  const eventId = String(event.event_id);
  const webhookSignature = createHmac('sha256', keysOf(settings.secret).webhook).update(`${eventId}.${timestamp}.${body}`).digest('base64');
  const headers = {
    'content-type': 'application/json',
    'user-agent': USER_AGENT,
    'webhook-id': eventId,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': `v1,${webhookSignature}`,
  };
  return { body, headers };
}
