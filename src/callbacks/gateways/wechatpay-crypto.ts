import { createDecipheriv, createPublicKey, verify, X509Certificate, type KeyObject } from 'node:crypto';

/**
 * The cryptography of WeChat Pay API v3 notifications:
 * - the `Wechatpay-Signature` header is base64 SHA256withRSA over `<timestamp>\n<nonce>\n<raw body>\n`,
 *   made with the platform key that `Wechatpay-Serial` names;
 * - `resource.ciphertext` is base64(AES-256-GCM ciphertext || 16-byte tag) under the APIv3 key, with
 *   `resource.nonce` as IV and `resource.associated_data` as AAD.
 */

/** The GCM authentication tag WeChat appends to the ciphertext. */
const GCM_TAG_BYTES = 16;

/** Platform public keys by serial, looked up case-insensitively (certificate serials are hex). */
export type PlatformKeys = ReadonlyMap<string, KeyObject>;

const normalSerial = (serial: string) => serial.trim().toUpperCase();
/** Certificate serial numbers compare as hex numbers: case and leading zeros do not matter. */
const hexSerial = (serial: string) =>
  serial
    .trim()
    .toUpperCase()
    .replace(/^0+(?=.)/, '');

/** A PEM public key, a PEM certificate, or the bare base64 of an SPKI public key, to an RSA public KeyObject. */
function platformKey(serial: string, value: unknown): KeyObject {
  const where = `WECHATPAY_PLATFORM_KEYS: serial ${JSON.stringify(serial)}`;
  if (typeof value !== 'string' || value.trim() === '') throw new Error(`${where}: the value must be a PEM public key or certificate (a string)`);
  // Tolerate PEMs pasted with literal "\n" sequences instead of newlines.
  const text = value.trim().replace(/\\n/g, '\n');
  if (/PRIVATE KEY-----/.test(text)) {
    throw new Error(`${where}: this is a private key; paste WeChat Pay's platform public key or platform certificate, never a private key`);
  }
  let key: KeyObject;
  let certificateSerial: string | undefined;
  try {
    if (text.includes('-----BEGIN CERTIFICATE-----')) {
      const certificate = new X509Certificate(text);
      certificateSerial = certificate.serialNumber;
      key = certificate.publicKey;
    } else if (text.startsWith('-----BEGIN ')) {
      key = createPublicKey(text);
    } else {
      key = createPublicKey({ key: Buffer.from(text.replace(/\s+/g, ''), 'base64'), format: 'der', type: 'spki' });
    }
  } catch (err) {
    throw new Error(`${where}: not a valid public key or certificate (${(err as Error).message})`, { cause: err });
  }
  if (certificateSerial !== undefined && hexSerial(certificateSerial) !== hexSerial(serial)) {
    throw new Error(`${where}: the certificate's serial number is ${certificateSerial}; list each certificate under its own serial number`);
  }
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`${where}: the key is ${key.asymmetricKeyType ?? 'unknown'}, but WeChat Pay signs with RSA`);
  return key;
}

/**
 * Raw newlines inside JSON strings, as a PEM pasted into a double-quoted or multi-line setting arrives, escaped so
 * that JSON.parse accepts them. Outside strings they are left alone (they are JSON whitespace there).
 */
function escapeNewlinesInStrings(json: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i]!;
    if (inString && c === '\\') {
      out += c + (json[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') inString = !inString;
    out += inString && c === '\n' ? '\\n' : inString && c === '\r' ? '' : c;
  }
  return out;
}

/**
 * Parses WECHATPAY_PLATFORM_KEYS, `{"<serial>":"<PEM>", …}`: a JSON object with one entry per platform key
 * or certificate (several during a rotation). Throws a message naming the offending serial.
 */
export function parsePlatformKeys(json: string): PlatformKeys {
  let parsed: unknown;
  try {
    parsed = JSON.parse(escapeNewlinesInStrings(json));
  } catch (err) {
    throw new Error(`WECHATPAY_PLATFORM_KEYS: not valid JSON (${(err as Error).message}); expected {"<serial>":"<PEM>"}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error('WECHATPAY_PLATFORM_KEYS: must be a JSON object {"<serial>":"<PEM>"}');
  }
  const keys = new Map<string, KeyObject>();
  for (const [serial, value] of Object.entries(parsed)) {
    if (!/^[\x21-\x7e]{1,128}$/.test(serial))
      throw new Error(`WECHATPAY_PLATFORM_KEYS: serial ${JSON.stringify(serial)} must be 1-128 printable ASCII characters without spaces`);
    const normal = normalSerial(serial);
    if (keys.has(normal)) throw new Error(`WECHATPAY_PLATFORM_KEYS: serial ${JSON.stringify(serial)} is listed twice`);
    keys.set(normal, platformKey(serial, value));
  }
  if (keys.size === 0) throw new Error('WECHATPAY_PLATFORM_KEYS: lists no key; expected {"<serial>":"<PEM>"}');
  return keys;
}

export function findPlatformKey(keys: PlatformKeys, serial: string): KeyObject | undefined {
  return keys.get(normalSerial(serial));
}

/** The APIv3 key is used as the AES-256 key as is: it must be exactly 32 bytes. */
export function apiV3KeyBytes(apiV3Key: string): Buffer {
  const key = Buffer.from(apiV3Key, 'utf8');
  if (key.length !== 32) throw new Error(`WECHATPAY_APIV3_KEY: must be exactly 32 bytes (it is ${key.length})`);
  return key;
}

/** Checks the header signature over the exact request bytes. */
export function verifyNotificationSignature(key: KeyObject, timestamp: string, nonce: string, rawBody: Buffer, signature: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signature)) return false;
  const message = Buffer.concat([Buffer.from(`${timestamp}\n${nonce}\n`, 'utf8'), rawBody, Buffer.from('\n', 'utf8')]);
  try {
    return verify('sha256', message, key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/** Decrypts `resource`: the plaintext, or null when the ciphertext does not authenticate under this key. */
export function decryptResource(key: Buffer, resource: { ciphertext: string; nonce: string; associated_data?: string }): string | null {
  const data = Buffer.from(resource.ciphertext, 'base64');
  if (data.length <= GCM_TAG_BYTES || resource.nonce.length === 0) return null;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(resource.nonce, 'utf8'), { authTagLength: GCM_TAG_BYTES });
    decipher.setAuthTag(data.subarray(data.length - GCM_TAG_BYTES));
    decipher.setAAD(Buffer.from(resource.associated_data ?? '', 'utf8'));
    return Buffer.concat([decipher.update(data.subarray(0, data.length - GCM_TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    return null;
  }
}
