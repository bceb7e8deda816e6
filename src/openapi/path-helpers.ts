import { orderNoSchema } from '../orders/order.schema.ts';
import { jsonSchemaOf, schemaRef, type JsonSchema } from './registry.ts';

/** Pieces every operation of the document is written with. */

export const API_AUTH = [{ ApiKey: [] }, { BearerApiKey: [] }];
export const GUARDED = [401, 403, 429]; // every /api and /query_order call: key, API_IP_ALLOWLIST, rate limit
export const json = (schema: JsonSchema) => ({ 'application/json': { schema } });
export const ref = (id: string) => ({ $ref: schemaRef(id) });

export function ok(status: number, id: string, description: string) {
  return { [status]: { description, content: json(ref(id)) } };
}

/** The shared error responses of `statuses` (and 500, which any call may meet). */
export function errors(...statuses: number[]) {
  return Object.fromEntries([...new Set([...statuses, 500])].sort().map((s) => [String(s), { $ref: `#/components/responses/Error${s}` }]));
}

export const orderNoParam = { name: 'order_no', in: 'path', required: true, schema: jsonSchemaOf(orderNoSchema), example: 'ORD-1001' };
