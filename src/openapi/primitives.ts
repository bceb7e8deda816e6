import { z } from 'zod';
import { doc } from './registry.ts';

/** Field shapes shared by the response schemas (orders, refunds, sync answers). */

export const time = doc(z.iso.datetime(), { description: 'ISO-8601 UTC time', examples: ['2026-11-25T14:32:08.588Z'] });
export const nullableTime = time.nullable();
export const decimal = doc(z.string().regex(/^\d+(\.\d+)?$/), {
  description: 'Exact decimal with exactly the currency\'s minor-unit digits ("0.50" USD, "1500" JPY, "1.250" KWD)',
  examples: ['99.90'],
});
export const currencyCode = doc(z.string().regex(/^[A-Z]{3}$/), { description: 'ISO 4217 currency code', examples: ['CNY'] });
