import { isOrderNo } from '../orders/order-number.ts';
import { ambiguityOf, PARAM_NAME } from '../shared/signing.ts';

/** Callback parameters must be a flat map of strings; anything else is refused before any work is done. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const MAX_PARAMS = 100;

export type FlatParams = Record<string, string>;

export type FlattenResult = { ok: true; params: FlatParams } | { ok: false; message: string };

/**
 * Form fields arrive as strings; flat JSON may carry numbers, which are signed as JSON writes them.
 * Arrays, objects, booleans, nulls and odd keys are refused (never a 500, never prototype pollution), and so
 * is any value holding `&name=`, which would make the signing string fit a different parameter set.
 */
export function flattenParams(input: unknown): FlattenResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { ok: false, message: 'parameters must be a flat form or JSON object' };
  const keys = Object.keys(input);
  if (keys.length === 0) return { ok: false, message: 'no parameters were sent' };
  if (keys.length > MAX_PARAMS) return { ok: false, message: `at most ${MAX_PARAMS} parameters are accepted` };
  const params: FlatParams = Object.create(null) as FlatParams;
  for (const key of keys) {
    if (FORBIDDEN_KEYS.has(key) || !PARAM_NAME.test(key)) return { ok: false, message: `parameter name ${JSON.stringify(key.slice(0, 64))} is not allowed` };
    const value = (input as Record<string, unknown>)[key];
    if (typeof value === 'string') params[key] = value;
    else if (typeof value === 'number' && Number.isFinite(value)) params[key] = String(value);
    else return { ok: false, message: `parameter ${key} must be a string` };
  }
  // A value that could re-split under the same signature is refused before anything is verified or applied.
  const ambiguity = ambiguityOf(params);
  if (ambiguity) return { ok: false, message: ambiguity };
  return { ok: true, params };
}

/** The order number a request claims, for the log even when nothing else about it is valid. */
export function claimedOrderNo(input: unknown): string | undefined {
  const value = typeof input === 'object' && input !== null ? (input as Record<string, unknown>).order_no : undefined;
  return isOrderNo(value) ? value : undefined;
}
