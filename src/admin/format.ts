import type { Lang, Messages } from '../pages/i18n.ts';

/** Display helpers for console templates: times, ages, counts and raw payloads, all as plain text (EJS escapes). */

/** `2026-11-25 14:03:07.123` → `2026-11-25 14:03:07` (stored times are UTC). */
export function fmtTime(dbTime: string | null | undefined): string {
  return dbTime ? dbTime.slice(0, 19) : '—';
}

const UNITS: Record<Lang, { s: string; min: string; h: string; d: string }> = {
  en: { s: 's', min: 'min', h: 'h', d: 'd' },
  'zh-CN': { s: '秒', min: '分钟', h: '小时', d: '天' },
};

/** A duration in seconds as `42 s`, `7 min`, `3 h 5 min`, `2 d 4 h` (in Chinese `42 秒`, `7 分钟` …). */
export function fmtAge(seconds: number, lang: Lang = 'en'): string {
  const u = UNITS[lang];
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} ${u.s}`;
  if (s < 3600) return `${Math.floor(s / 60)} ${u.min}`;
  if (s < 86_400) return `${Math.floor(s / 3600)} ${u.h} ${Math.floor((s % 3600) / 60)} ${u.min}`;
  return `${Math.floor(s / 86_400)} ${u.d} ${Math.floor((s % 86_400) / 3600)} ${u.h}`;
}

const pluralRules = new Map<Lang, Intl.PluralRules>();

/**
 * `{n} <noun>` in the form the number takes in `lang`: `<key>_one` / `<key>_other` (English), `<key>_zero`
 * when there is one (a sentence for none), `<key>_other` for Chinese, which has no plural.
 */
export function countText(t: Messages, lang: Lang, key: string, n: number): string {
  let rules = pluralRules.get(lang);
  if (!rules) pluralRules.set(lang, (rules = new Intl.PluralRules(lang)));
  const dict = t as Record<string, string>;
  const text = (n === 0 ? dict[`${key}_zero`] : undefined) ?? dict[`${key}_${rules.select(n)}`] ?? dict[`${key}_other`] ?? key;
  return text.replaceAll('{n}', n.toLocaleString(lang));
}

export interface PrettyPayload {
  format: 'json' | 'form' | 'text' | 'empty';
  text: string;
}

const FORM = /^[^=&\s]+=[^&\s]*(&[^=&\s]+=[^&\s]*)*$/;
const LIMIT = 65_536;

/**
 * A raw request as an operator wants to read it: JSON indented, a form one `key = value` per line (decoded),
 * anything else verbatim. The result is text: the template escapes it, so a hostile payload stays inert.
 */
export function prettyPayload(raw: string | null | undefined): PrettyPayload {
  if (raw === null || raw === undefined || raw.trim() === '') return { format: 'empty', text: '' };
  const text = raw.length > LIMIT ? `${raw.slice(0, LIMIT)}\n…` : raw;
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return { format: 'json', text: JSON.stringify(JSON.parse(trimmed), null, 2) };
    } catch {
      // not JSON after all: shown verbatim below
    }
  }
  if (FORM.test(trimmed)) {
    try {
      const lines = [...new URLSearchParams(trimmed)].map(([k, v]) => `${k} = ${v}`);
      return { format: 'form', text: lines.join('\n') };
    } catch {
      // undecodable: verbatim
    }
  }
  return { format: 'text', text };
}

export interface FieldRows {
  format: 'fields';
  rows: Array<{ name: string; value: string }>;
}

const MAX_ROWS = 500;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Nested JSON as `path = value` rows (`amount.total`, `items[0].id`), in document order. */
function flatten(value: unknown, path: string, rows: FieldRows['rows']): void {
  if (rows.length >= MAX_ROWS) return;
  if (Array.isArray(value) || isObject(value)) {
    const entries = Array.isArray(value)
      ? value.map((v, i) => [`${path}[${i}]`, v] as const)
      : Object.entries(value).map(([k, v]) => [path ? `${path}.${k}` : k, v] as const);
    if (entries.length === 0) rows.push({ name: path, value: Array.isArray(value) ? '[]' : '{}' });
    for (const [name, child] of entries) flatten(child, name, rows);
    return;
  }
  rows.push({ name: path, value: value === null ? 'null' : String(value) });
}

/**
 * The generic gateway's entries store the verified result in the service's own terms (callback.service.ts:
 * orderNo, transactionId, amount {kind, value}, outcome). Shown with the parameter names the gateway signed.
 */
function genericRows(v: Record<string, unknown>): FieldRows['rows'] | null {
  const amount = v.amount;
  if (typeof v.orderNo !== 'string' || typeof v.transactionId !== 'string' || typeof v.outcome !== 'string' || !isObject(amount)) return null;
  const status = ({ paid: 'success', failed: 'failed' } as Record<string, string>)[v.outcome] ?? v.outcome;
  const rows = [
    { name: 'order_no', value: v.orderNo },
    { name: 'transaction_id', value: v.transactionId },
    { name: 'amount', value: String(amount.value) },
  ];
  if (typeof v.currency === 'string') rows.push({ name: 'currency', value: v.currency });
  rows.push({ name: 'status', value: status });
  return rows;
}

/**
 * A payment-log entry's verified fields as a name/value table: the gateway's own field names (a real gateway's
 * verified body, flattened; the generic gateway's signed parameters). Anything not a JSON object: as text.
 */
export function verifiedFields(raw: string | null | undefined): FieldRows | PrettyPayload {
  if (raw === null || raw === undefined || raw.trim() === '') return { format: 'empty', text: '' };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return prettyPayload(raw);
  }
  if (!isObject(value)) return prettyPayload(raw);
  const generic = genericRows(value);
  if (generic) return { format: 'fields', rows: generic };
  const rows: FieldRows['rows'] = [];
  flatten(value, '', rows);
  if (rows.length >= MAX_ROWS) rows.push({ name: '…', value: '' });
  return { format: 'fields', rows };
}
