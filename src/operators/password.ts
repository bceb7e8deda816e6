import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** scrypt at N=2^15, r=8, p=1: 32 MiB and ~80 ms a hash here; stored with the hash so it can be raised later. */
const COST = { N: 2 ** 15, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Longer inputs are refused before hashing: nobody types a kilobyte, and it bounds the work one request can ask for. */
export const MAX_PASSWORD_CHARS = 1024;

function derive(password: string, salt: Buffer, cost: { N: number; r: number; p: number }, keyLength: number): Promise<Buffer> {
  const options: ScryptOptions = { ...cost, maxmem: 256 * cost.N * cost.r + 1024 * 1024 };
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key))));
}

/** `scrypt$<N>$<r>$<p>$<salt base64url>$<hash base64url>` with a fresh random salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, COST, KEY_BYTES);
  return ['scrypt', COST.N, COST.r, COST.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

interface Parsed {
  cost: { N: number; r: number; p: number };
  salt: Buffer;
  key: Buffer;
}

/** A stored hash's parts, or null when it is not one of ours (or asks for unreasonable work). */
function parse(stored: string): Parsed | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const powerOfTwo = Number.isSafeInteger(N) && N >= 2 && (N & (N - 1)) === 0;
  if (!powerOfTwo || N > 2 ** 20 || !Number.isInteger(r) || r < 1 || r > 32 || !Number.isInteger(p) || p < 1 || p > 16) return null;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const key = Buffer.from(parts[5]!, 'base64url');
  if (salt.length < 8 || key.length < 16 || key.length > 64) return null;
  return { cost: { N, r, p }, salt, key };
}

/** Whether `password` matches `stored`; constant time in the comparison, and false (never a throw) for a malformed hash. */
export async function verifyPassword(password: unknown, stored: string): Promise<boolean> {
  const parsed = parse(stored);
  const usable = typeof password === 'string' && password.length > 0 && password.length <= MAX_PASSWORD_CHARS;
  if (!parsed) {
    await dummyVerify();
    return false;
  }
  // An unusable input still costs one derivation, so the answer's timing says nothing about why it failed.
  const key = await derive(usable ? password : '', parsed.salt, parsed.cost, parsed.key.length);
  return usable && timingSafeEqual(key, parsed.key);
}

let dummy: Promise<string> | null = null;

/** The work of one verification against no account: an unknown username takes as long to refuse as a wrong password. */
export async function dummyVerify(): Promise<void> {
  dummy ??= hashPassword(randomBytes(16).toString('base64url'));
  const parsed = parse(await dummy)!;
  await derive('not-a-password', parsed.salt, parsed.cost, parsed.key.length);
}

/** A one-time password to hand to a person: 20 characters from a 57-letter alphabet without look-alikes (~116 bits). */
export function generatePassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const out: string[] = [];
  while (out.length < 20) {
    for (const byte of randomBytes(32)) {
      // Rejection sampling keeps every letter equally likely.
      if (byte < 228 && out.length < 20) out.push(alphabet[byte % 57]!);
    }
  }
  return out.join('');
}
