import { errors, request } from 'undici';
import { GatewayCallError } from '../gateway-client.ts';
import type { QueryTransport } from './generic.client.ts';

/** An answer larger than this is not a query answer. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** POSTs the form to `url` within `timeoutMs`; every failure becomes a GatewayCallError. Redirects are not followed. */
export function httpFormTransport(url: string, timeoutMs: number): QueryTransport {
  return async (form, signal) => {
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams(form).toString(),
        signal: AbortSignal.any([signal, timeout]),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > MAX_ANSWER_BYTES) {
          res.body.destroy();
          throw new GatewayCallError('malformed', `the answer is larger than ${MAX_ANSWER_BYTES} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
      return { status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') };
    } catch (err) {
      if (err instanceof GatewayCallError) throw err;
      if (timeout.aborted || err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError)
        throw new GatewayCallError('timeout', `no answer within ${timeoutMs} ms`);
      throw new GatewayCallError('network', `the gateway could not be reached: ${(err as Error).message}`);
    }
  };
}
