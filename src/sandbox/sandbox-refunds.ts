import type { CallbackService } from '../callbacks/callback.service.ts';
import type { GatewayAdapter } from '../callbacks/gateways/gateway.ts';
import type { QueryTransport } from '../reconcile/clients/generic.client.ts';
import { signRefundNotification, type RefundRequestFields } from '../reconcile/refund-protocol.ts';
import type { Clock } from '../shared/time.ts';
import type { SandboxGateway } from './sandbox-gateway.ts';

export interface SandboxRefundsDeps {
  books: SandboxGateway;
  callbacks: Pick<CallbackService, 'handle'>;
  /** The sandbox's generic adapter: its notifications are verified and logged as gateway `sandbox`. */
  gateway: GatewayAdapter;
  secret: string;
  clock: Clock;
  logger: { warn(fields: object, message: string): void };
}

/**
 * The sandbox gateway's refund protocol, in process: `refund` answers refund requests from its books and, for a
 * refund booked just now, sends the signed refund notification through the same service call as POST /notify,
 * right after answering (as a gateway notifies after its answer). `query` answers the query protocol, refund
 * queries included. The refund client (createGenericRefundClient('sandbox', …)) speaks to both.
 */
export function createSandboxRefunds({ books, callbacks, gateway, secret, clock, logger }: SandboxRefundsDeps) {
  const inFlight = new Set<Promise<void>>();

  /** A notification that is not applied or fails is only logged: the pending-refund loop settles the refund by query. */
  async function notify(refund: RefundRequestFields): Promise<void> {
    const refundNo = refund.refund_no;
    try {
      const params = signRefundNotification({ ...refund, status: 'refund_success' }, secret, clock());
      const raw = new URLSearchParams(params).toString();
      const outcome = await callbacks.handle({ gateway, kind: 'notify', params, raw, headers: {}, remoteIp: null, trusted: true });
      if (outcome.status !== 200)
        logger.warn(
          { refundNo, verdict: outcome.verdict, message: outcome.message },
          'sandbox: the refund notification was not applied; asking the sandbox settles it',
        );
    } catch (err) {
      logger.warn({ refundNo, err }, 'sandbox: the refund notification failed; asking the sandbox settles it');
    }
  }

  const refund: QueryTransport = async (form) => {
    const { status, body, accepted } = await books.answerRefund(form);
    if (accepted) {
      const task = new Promise<void>((resolve) => setImmediate(resolve)).then(() => notify(accepted));
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
    }
    return { status, body };
  };

  const query: QueryTransport = async (form) => {
    const { status, body } = await books.answerQuery(form);
    return { status, body };
  };

  /** Resolves when every notification sent so far has been handled (tests; a stop that waits for them). */
  async function whenIdle(): Promise<void> {
    while (inFlight.size > 0) await Promise.all([...inFlight]);
  }

  return { refund, query, whenIdle };
}

export type SandboxRefunds = ReturnType<typeof createSandboxRefunds>;
