import { GATEWAYS, type Config, type GatewayName } from '../config.ts';
import { fail, pass, warn, type CheckResult } from './doctor.checks.ts';

/** What the reconciliation line of `npm run doctor` reads from the configuration. */
export type ReconcileSettings = Pick<Config, 'sandboxEnabled' | 'gatewayApis' | 'alipay' | 'wechatpay' | 'stripe'>;

/** What a configured gateway lacks before the reconciler can ask it. */
const MISSING: Record<GatewayName, string> = {
  generic: 'set GENERIC_QUERY_URL',
  sandbox: 'set SANDBOX_ENABLED=true',
  alipay: 'set ALIPAY_PRIVATE_KEY',
  wechatpay: 'set WECHATPAY_MCH_PRIVATE_KEY and WECHATPAY_MCH_SERIAL',
  stripe: 'set STRIPE_SECRET_KEY',
};

const isLoopback = (hostname: string) => hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);

/**
 * The API bases that carry credentials (Stripe's secret key) or signed merchant requests of the big gateways:
 * plain http is for a local stand-in only. The generic query protocol is not judged: every request and answer is signed.
 */
function plainHttpProblems(apis: ReconcileSettings['gatewayApis']): string[] {
  const bases: Array<[string, string | undefined]> = [
    ['ALIPAY_GATEWAY_URL', apis.alipay?.gatewayUrl],
    ['WECHATPAY_API_BASE', apis.wechatpay?.apiBase],
    ['STRIPE_API_BASE', apis.stripe?.apiBase],
  ];
  return bases.flatMap(([name, base]) => {
    if (!base) return [];
    const url = new URL(base);
    return url.protocol === 'http:' && !isLoopback(url.hostname) ? [`${name} is plain http to ${url.hostname}`] : [];
  });
}

/**
 * Which configured gateways the reconciler can ask about pending orders, and what the others need. Gateways
 * that are not configured are left out: a missing optional gateway never fails the doctor.
 */
export function checkReconciliation(settings: ReconcileSettings, production: boolean): CheckResult {
  const name = 'reconciliation';
  const apis = settings.gatewayApis;
  const queryable: Record<GatewayName, boolean> = {
    generic: apis.generic !== null,
    sandbox: settings.sandboxEnabled,
    alipay: apis.alipay !== null,
    wechatpay: apis.wechatpay !== null,
    stripe: apis.stripe !== null,
  };
  // Generic callbacks need only GATEWAY_SECRET: it is always configured. The sandbox is there exactly when it can be asked.
  const configured: Record<GatewayName, boolean> = {
    generic: true,
    sandbox: settings.sandboxEnabled,
    alipay: settings.alipay !== null || queryable.alipay,
    wechatpay: settings.wechatpay !== null || queryable.wechatpay,
    stripe: settings.stripe !== null || queryable.stripe,
  };
  const asked = GATEWAYS.filter((g) => queryable[g]);
  const notAsked = GATEWAYS.filter((g) => configured[g] && !queryable[g]);
  const summary = [
    asked.length > 0 ? `${asked.join(', ')} can be asked` : 'no gateway can be asked',
    ...notAsked.map((g) => `${g} cannot (${MISSING[g]})`),
  ].join('; ');
  const problems = plainHttpProblems(apis);
  if (problems.length === 0) return pass(name, summary);
  const rule = "use https (plain http only to this host's loopback)";
  if (production) return fail(name, `${problems.join('; ')}: ${rule}; ${summary}`);
  return warn(name, `${problems.join('; ')}: ${rule}, doctor fails it in production; ${summary}`);
}

/**
 * Which gateways can refund (the real gateways with their query credentials; the generic gateway with
 * GENERIC_REFUND_URL); a generic refund API that cannot be asked leaves a refund whose notification is lost pending.
 */
export function checkRefunds(settings: ReconcileSettings): CheckResult {
  const name = 'refunds';
  const apis = settings.gatewayApis;
  const refundable = GATEWAYS.filter((g) => (g === 'generic' ? apis.genericRefundUrl !== null : g === 'sandbox' ? settings.sandboxEnabled : apis[g] !== null));
  const summary = [
    refundable.length > 0 ? `${refundable.join(', ')} can refund` : 'no gateway can refund',
    ...(refundable.includes('generic') ? [] : ['generic cannot (set GENERIC_REFUND_URL)']),
  ].join('; ');
  if (apis.genericRefundUrl !== null && apis.generic === null)
    return warn(name, `${summary}; GENERIC_QUERY_URL is not set, so a generic refund whose notification is lost stays pending until an operator looks`);
  return pass(name, summary);
}
