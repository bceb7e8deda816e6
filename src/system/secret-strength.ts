import type { Config } from '../config.ts';
import { COMMON_PASSWORDS, COMMON_WORDS } from './common-passwords.ts';

/**
 * What production demands of the configured secrets, shared by config.ts (production refuses to start),
 * the service's start in development (warnings) and npm run doctor. Only rules and positions are ever
 * reported, never a value.
 */

export const MIN_API_KEY_CHARS = 24;
export const MIN_GATEWAY_SECRET_CHARS = 32;
export const MIN_ADMIN_PASSWORD_CHARS = 12;
/** Stripe's signing secrets are `whsec_` and 32 (dashboard) or 64 (CLI) characters. */
const STRIPE_SECRET = /^whsec_[A-Za-z0-9+/=_-]{24,}$/;

export type WeakSecretName = 'API_KEYS' | 'GATEWAY_SECRET' | 'ADMIN_PASSWORD' | 'STRIPE_WEBHOOK_SECRET';

export interface Weakness {
  name: WeakSecretName;
  /** What production requires, e.g. "must be at least 32 characters". */
  rule: string;
  /** Which part breaks it, without the value (e.g. "key 2 of 3 is shorter"). */
  detail?: string;
}

export interface SecretValues {
  apiKeys?: readonly string[];
  GATEWAY_SECRET?: string;
  ADMIN_PASSWORD?: string;
  STRIPE_WEBHOOK_SECRET?: string;
}

export const describeWeakness = (w: Weakness) => `${w.rule}${w.detail ? ` (${w.detail})` : ''}`;

// Keyboard rows and columns, forwards (their reverses are checked too); a password inside one is a walk.
const WALKS = [
  'qwertyuiopasdfghjklzxcvbnm',
  '1234567890',
  'azertyuiopqsdfghjklmwxcvbn',
  'qwertzuiopasdfghjklyxcvbnm',
  '1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p',
  'zaq1xsw2cde3vfr4bgt5nhy6mju7ki8lo9p0',
  'qazwsxedcrfvtgbyhnujmikolp',
  '1q2w3e4r5t6y7u8i9o0p',
  'q1w2e3r4t5y6u7i8o9p0',
  'a1b2c3d4e5f6g7h8i9j0',
  '1a2b3c4d5e6f7g8h9i0j',
  '147258369',
  '789456123',
  '963852741',
];
const LEET: Record<string, string[]> = {
  '0': ['o'],
  '1': ['i', 'l'],
  '3': ['e'],
  '4': ['a'],
  '5': ['s'],
  '7': ['t'],
  '8': ['b'],
  '@': ['a'],
  $: ['s'],
  '!': ['i'],
  '|': ['l'],
};

function repeatedUnit(text: string): number | null {
  for (let size = 1; size <= text.length / 2; size++) {
    if (text.length % size === 0 && text.slice(0, size).repeat(text.length / size) === text) return size;
  }
  return null;
}

/** Consecutive characters one apart (digits wrap: 890123), or a keyboard walk. */
function isSequence(text: string): boolean {
  const step = (a: string, b: string) => {
    const diff = b.charCodeAt(0) - a.charCodeAt(0);
    return /\d/.test(a) && /\d/.test(b) && Math.abs(diff) === 9 ? -Math.sign(diff) : diff;
  };
  const first = step(text[0]!, text[1]!);
  if (Math.abs(first) === 1 && [...text].every((c, i) => i === 0 || step(text[i - 1]!, c) === first)) return true;
  return WALKS.some((walk) => `${walk}${walk}`.includes(text) || `${walk}${walk}`.split('').reverse().join('').includes(text));
}

/** Every reading of `text` with leet characters (p@ssw0rd) turned back into letters. */
function deLeet(text: string): string[] {
  let readings = [''];
  for (const c of text) readings = readings.flatMap((r) => (LEET[c] ?? [c]).map((l) => r + l)).slice(0, 64);
  return readings;
}

/** Whether `letters` is nothing but common words run together (adminadmin, testadminpassword). */
function onlyCommonWords(letters: string): boolean {
  if (!/^[a-z]+$/.test(letters)) return false;
  const ends = new Set([0]);
  for (let i = 1; i <= letters.length; i++) {
    for (const start of ends) {
      if (COMMON_WORDS.has(letters.slice(start, i))) {
        ends.add(i);
        break;
      }
    }
  }
  return ends.has(letters.length);
}

/** Common words with a few digits or symbols around them (Password2024!, 1234admin, adminadmin123). */
function isCommonComposition(lower: string): boolean {
  const match = /^([^a-z@$|]*)(.*?)([^a-z]*)$/.exec(lower)!;
  const around = `${match[1]}${match[3]}`;
  const simpleAround = around.length <= 6 || repeatedUnit(around) !== null || isSequence(around);
  if (!simpleAround) return false;
  return deLeet(match[2]!).some((reading) => {
    const letters = reading.replace(/[\s._+-]/g, '');
    return COMMON_PASSWORDS.has(letters) || onlyCommonWords(letters) || (letters.length >= 6 && isSequence(letters));
  });
}

/** Why `password` is weak for the console, or null. Case-insensitive. */
export function weakPasswordReason(password: string): string | null {
  if (password.length < MIN_ADMIN_PASSWORD_CHARS) return `must be at least ${MIN_ADMIN_PASSWORD_CHARS} characters`;
  const lower = password.toLowerCase();
  const unit = repeatedUnit(lower);
  if (unit === 1) return 'must not be one character repeated';
  if (unit !== null) return 'must not be a short pattern repeated';
  if (isSequence(lower)) return 'must not be a simple sequence (like abcdef, 123456 or qwerty)';
  if (COMMON_PASSWORDS.has(lower) || isCommonComposition(lower)) return 'must not be a commonly used password (or common words with a few digits or symbols)';
  return null;
}

/** The weaknesses of the given values that production refuses; values not given are not judged. */
export function secretWeaknesses(values: SecretValues): Weakness[] {
  const found: Weakness[] = [];
  const keys = values.apiKeys ?? [];
  const short = keys.findIndex((k) => k.length < MIN_API_KEY_CHARS);
  if (short >= 0)
    found.push({
      name: 'API_KEYS',
      rule: `each key must be at least ${MIN_API_KEY_CHARS} characters`,
      detail: `key ${short + 1} of ${keys.length} is shorter`,
    });
  if (values.GATEWAY_SECRET !== undefined && values.GATEWAY_SECRET.length < MIN_GATEWAY_SECRET_CHARS) {
    found.push({ name: 'GATEWAY_SECRET', rule: `must be at least ${MIN_GATEWAY_SECRET_CHARS} characters` });
  }
  const password = values.ADMIN_PASSWORD === undefined ? null : weakPasswordReason(values.ADMIN_PASSWORD);
  if (password) found.push({ name: 'ADMIN_PASSWORD', rule: password });
  if (values.STRIPE_WEBHOOK_SECRET !== undefined && !STRIPE_SECRET.test(values.STRIPE_WEBHOOK_SECRET)) {
    found.push({ name: 'STRIPE_WEBHOOK_SECRET', rule: "must be the endpoint's signing secret (whsec_ followed by at least 24 characters)" });
  }
  return found;
}

/** The weaknesses of a loaded configuration (development starts with them, and warns). */
export function configWeaknesses(config: Pick<Config, 'apiKeys' | 'secrets' | 'stripe'>): Weakness[] {
  return secretWeaknesses({
    apiKeys: config.apiKeys,
    GATEWAY_SECRET: config.secrets.GATEWAY_SECRET,
    ADMIN_PASSWORD: config.secrets.ADMIN_PASSWORD,
    STRIPE_WEBHOOK_SECRET: config.stripe?.webhookSecret,
  });
}
