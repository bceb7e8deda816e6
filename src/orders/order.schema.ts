import { z } from 'zod';
import { isKnownCurrency } from '../shared/currencies.ts';
import { parseAmount } from '../shared/money.ts';
import { parseTimeParam, TIME_PARAM_RULE } from '../shared/validation.ts';
import { ORDER_NO_PATTERN, ORDER_NO_RULE } from './order-number.ts';

export const ORDER_STATUSES = ['pending', 'paid', 'failed', 'closed', 'refunded'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];
export const PAYMENT_METHODS = ['generic', 'sandbox', 'alipay', 'wechatpay', 'stripe'] as const;

/** Bounds of an order's lifetime given at creation (expires_in, or expires_at from now). */
export const MIN_EXPIRES_IN = 60;
export const MAX_EXPIRES_IN = 604_800;

export const orderNoSchema = z.string().regex(ORDER_NO_PATTERN, ORDER_NO_RULE);

export const httpUrl = z
  .string()
  .max(2048, 'must be at most 2048 characters')
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be an absolute http:// or https:// URL');

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
// Checked on the raw object: zod would silently drop an own `__proto__` key while building the record.
const noForbiddenKeys = z.custom<unknown>(
  (v) => typeof v !== 'object' || v === null || !Object.keys(v).some((k) => FORBIDDEN_KEYS.has(k)),
  'keys __proto__, constructor and prototype are not allowed',
);
const metadataSchema = noForbiddenKeys.pipe(
  z
    .record(z.string(), z.union([z.string().max(1024), z.number(), z.boolean(), z.null()]), {
      error: 'must be a flat JSON object of strings, numbers, booleans or nulls',
    })
    .refine((m) => Object.keys(m).length <= 50, 'must have at most 50 keys')
    .refine(
      (m) => Object.keys(m).every((k) => /^[A-Za-z0-9_.-]{1,64}$/.test(k) && !FORBIDDEN_KEYS.has(k)),
      'keys must be 1-64 characters of A-Z, a-z, 0-9, _ . -',
    ),
);

/** JSON numbers are accepted only when they print as a plain decimal (1e3 and 0.1+0.2 artefacts are refused). */
export const amountText = z
  .union([z.string(), z.number()], { error: 'must be a decimal string such as "12.34"' })
  .transform((v) => String(v))
  .refine((v) => /^\d{1,18}(\.\d{1,18})?$/.test(v), 'must be a plain positive decimal such as 12.34')
  .refine((v) => /[1-9]/.test(v), 'must be greater than zero');

const currency = z
  .string()
  .regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as CNY')
  .refine(isKnownCurrency, 'is not a known ISO 4217 currency');

export const createOrderSchema = z
  .object({
    order_no: orderNoSchema.optional(),
    amount: amountText,
    currency: currency.default('CNY'),
    payment_method: z.enum(PAYMENT_METHODS).optional(),
    subject: z.string().max(256, 'must be at most 256 characters').optional(),
    callback_url: httpUrl.optional(),
    notify_url: httpUrl.optional(),
    metadata: metadataSchema.optional(),
    // Seconds from now (JSON number or form text); the service default is ORDER_TTL.
    expires_in: z.coerce
      .number({ error: 'must be a whole number of seconds' })
      .int('must be a whole number of seconds')
      .min(MIN_EXPIRES_IN, `must be at least ${MIN_EXPIRES_IN} seconds`)
      .max(MAX_EXPIRES_IN, `must be at most ${MAX_EXPIRES_IN} seconds (7 days)`)
      .optional(),
    expires_at: z.iso.datetime({ offset: true, error: 'must be an ISO-8601 time such as 2026-12-07T10:00:00Z' }).optional(),
  })
  .transform((input, ctx) => {
    if (input.expires_in !== undefined && input.expires_at !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['expires_at'], message: 'give expires_in or expires_at, not both' });
      return z.NEVER;
    }
    const parsed = parseAmount(input.amount, input.currency);
    if (!parsed.ok) {
      ctx.addIssue({ code: 'custom', path: ['amount'], message: parsed.message });
      return z.NEVER;
    }
    return { ...input, amountMinor: parsed.minor };
  });

export type CreateOrderInput = z.infer<typeof createOrderSchema>;

const timeParam = (endOfDay: boolean) =>
  z.string().transform((value, ctx) => {
    const date = parseTimeParam(value, endOfDay);
    if (!date) {
      ctx.addIssue({ code: 'custom', message: TIME_PARAM_RULE });
      return z.NEVER;
    }
    return date;
  });

const cursorSchema = z.string().transform((value, ctx) => {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as unknown[];
    if (typeof createdAt === 'string' && /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/.test(createdAt) && Number.isSafeInteger(id)) {
      return { createdAt, id: id as number };
    }
  } catch {
    // fall through to the validation issue
  }
  ctx.addIssue({ code: 'custom', message: 'is not a cursor returned by this API' });
  return z.NEVER;
});

const positiveInt = (max: number) => z.string().regex(/^\d+$/, 'must be a positive integer').transform(Number).pipe(z.number().int().min(1).max(max));

export const listOrdersSchema = z.object({
  status: z.enum(ORDER_STATUSES).optional(),
  from: timeParam(false).optional(),
  to: timeParam(true).optional(),
  page: positiveInt(1_000_000).default(1),
  limit: positiveInt(100).default(20),
  cursor: cursorSchema.optional(),
});

export type ListOrdersQuery = z.infer<typeof listOrdersSchema>;

/** A refinement refusing a window whose start (`fromKey`) is later than its end (`toKey`); the issue is filed under `toKey`. */
export function timeWindow<K extends string>(fromKey: K, toKey: K) {
  return (value: Partial<Record<K, Date | undefined>>, ctx: z.RefinementCtx) => {
    const from = value[fromKey];
    const to = value[toKey];
    if (from && to && from.getTime() > to.getTime()) ctx.addIssue({ code: 'custom', path: [toKey], message: `must not be earlier than ${fromKey}` });
  };
}

/** listOrdersSchema with its window checked (kept apart: zod cannot pick or omit keys of a refined object). */
export const listOrdersQuerySchema = listOrdersSchema.superRefine(timeWindow('from', 'to'));

/** `page` and `limit` alone, as the order list takes them. */
export const pageSchema = listOrdersSchema.pick({ page: true, limit: true });
export type PageQuery = z.infer<typeof pageSchema>;
export type OrderCursor = NonNullable<ListOrdersQuery['cursor']>;

export function encodeCursor(cursor: OrderCursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt, cursor.id])).toString('base64url');
}
