import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_STATUS, type ErrorCode } from '../shared/errors.ts';
import { PROJECT_ROOT } from '../shared/paths.ts';
import { paths } from './openapi.paths.ts';
import { componentSchemas, schemaRef, type JsonSchema } from './registry.ts';
import { ERROR_CODES } from './response.schemas.ts';

/** A typical message per stable code; typed as a full record so a new code cannot go undocumented. */
const EXAMPLE_MESSAGES: Record<ErrorCode, string> = {
  validation_failed: 'Invalid order: amount CNY allows at most 2 decimal places',
  unauthorized: 'Missing API key: send X-API-Key or Authorization: Bearer',
  bad_signature: 'The signature does not match',
  forbidden: '203.0.113.9 is not allowed to call the API',
  not_found: 'Order ORD-1001 not found',
  order_exists: 'Order ORD-1001 already exists with different fields',
  invalid_state: 'Order ORD-1001 is paid; only pending or failed orders can be closed',
  not_queryable: 'Order ORD-1001 is paid through the generic gateway, which this service cannot ask: set GENERIC_QUERY_URL',
  not_refundable: 'Order ORD-1001 is paid through the generic gateway, which this service cannot refund: set GENERIC_REFUND_URL',
  refund_exists: 'Refund RF-1001 already exists with different fields',
  refund_exceeds_paid: 'Refund of 50.00 exceeds what can still be refunded of order ORD-1001 (20.00 CNY)',
  gateway_error: 'The gateway could not be asked: timeout: no answer within 10000 ms',
  replayed: 'timestamp is more than 300 s away from now',
  amount_mismatch: 'The amount 9.90 differs from the order amount 99.90',
  payload_too_large: 'The request body is larger than 64 KiB',
  unsupported_media_type: 'Send the order as JSON (application/json) or a form (application/x-www-form-urlencoded)',
  rate_limited: 'Too many requests: at most 600 per minute',
  internal_error: 'An unexpected error occurred',
  unavailable: 'The service is temporarily unavailable; the request was not acknowledged and is safe to retry.',
};

/** `components.responses.Error<status>`: the error envelope with every code that status can carry. */
function errorResponses() {
  const statuses = [...new Set(Object.values(ERROR_STATUS))].sort();
  return Object.fromEntries(
    statuses.map((status) => {
      const codes = ERROR_CODES.filter((code) => ERROR_STATUS[code] === status);
      const examples = Object.fromEntries(
        codes.map((code) => [
          code,
          {
            value: {
              success: false,
              code,
              message: EXAMPLE_MESSAGES[code],
              ...(code === 'validation_failed' ? { errors: [{ path: 'amount', message: 'CNY allows at most 2 decimal places' }] } : {}),
            },
          },
        ]),
      );
      return [
        `Error${status}`,
        {
          description: `Error envelope; code ${codes.join(' or ')}`,
          ...(status === 429 || status === 503
            ? { headers: { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' } } } }
            : {}),
          content: { 'application/json': { schema: { $ref: schemaRef('Error') }, examples } },
        },
      ];
    }),
  );
}

export interface OpenApiDocument {
  openapi: string;
  info: JsonSchema;
  paths: Record<string, Record<string, JsonSchema>>;
  components: { schemas: Record<string, JsonSchema>; responses: Record<string, JsonSchema>; securitySchemes: Record<string, JsonSchema> };
  [key: string]: unknown;
}

let cached: OpenApiDocument | undefined;

/** The OpenAPI 3.1 document of the JSON API, generated from the zod schemas once per process. */
export function openApiDocument(): OpenApiDocument {
  cached ??= {
    openapi: '3.1.1',
    info: {
      title: 'Payment callback service',
      version: (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version,
      summary: 'Orders, signed gateway callbacks, refunds, merchant notifications with retries, and the query API',
      description:
        'JSON answers use the envelope {"success": true, "data": …, "message": "…"}; failures carry a stable `code` ' +
        '(see the Error responses). Bodies are limited to 64 KiB.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    servers: [{ url: '/', description: 'This instance' }],
    tags: [
      { name: 'Orders', description: 'Create, read, list and close orders, and ask their gateway about them' },
      { name: 'Refunds', description: 'Refund paid orders through their gateway, and follow the refunds until the gateway settles them' },
      { name: 'Notifications', description: 'Outbound merchant notifications' },
      { name: 'Heritage query API', description: 'The query_order.php compatible API' },
      { name: 'Gateway callbacks', description: 'Signed notifications from payment gateways' },
      { name: 'Operations', description: 'Health, readiness and metrics' },
    ],
    paths,
    components: {
      schemas: componentSchemas(),
      responses: errorResponses(),
      securitySchemes: {
        ApiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'An API key from API_KEYS or `npm run apikey -- create <name>`' },
        BearerApiKey: { type: 'http', scheme: 'bearer', description: 'The same API key as Authorization: Bearer <key>' },
        MetricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN, required by /metrics only when it is set' },
      },
    },
  };
  return cached;
}
