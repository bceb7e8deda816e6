import type { GatewayName } from '../../config.ts';
import type { Clock } from '../../shared/time.ts';
import { excerptOf, GatewayCallError, type GatewayClient, type QueryAnswer } from '../gateway-client.ts';
import { signQueryRequest, verifyQueryAnswer } from '../query-protocol.ts';

/** Carries the signed form to the gateway and brings back its status and body (HTTP, or the sandbox in process). */
export type QueryTransport = (form: Record<string, string>, signal: AbortSignal) => Promise<{ status: number; body: string }>;

/** The generic query protocol's client: the generic gateway (GENERIC_QUERY_URL) and the sandbox speak it. */
export function createGenericQueryClient(
  gateway: Extract<GatewayName, 'generic' | 'sandbox'>,
  secret: string,
  transport: QueryTransport,
  clock: Clock,
): GatewayClient {
  return {
    gateway,
    async query(target, signal) {
      const form = signQueryRequest(target.orderNo, secret, clock());
      const { status, body } = await transport(form, signal);
      if (status < 200 || status > 299) throw new GatewayCallError('http_status', `the gateway answered HTTP ${status}`, excerptOf(body));
      const checked = verifyQueryAnswer(body, secret, target.orderNo, clock());
      if (!checked.ok) throw new GatewayCallError(checked.reason === 'bad_signature' ? 'bad_signature' : 'malformed', checked.message, excerptOf(body));
      const answer = checked.value;
      const fields: Record<string, unknown> = { ...answer };
      if (answer.status === 'success')
        return {
          state: 'paid',
          transactionId: answer.transaction_id!,
          amount: { kind: 'decimal', value: answer.amount! },
          currency: answer.currency,
          fields,
        } satisfies QueryAnswer;
      return { state: answer.status === 'failed' ? 'failed' : answer.status, gatewayStatus: answer.status, fields };
    },
  };
}
