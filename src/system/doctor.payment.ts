import { randomBytes } from 'node:crypto';
import type { Database } from '../db/database.ts';
import { computeSign } from '../shared/signing.ts';
import { getConfigValues } from '../settings/system-config.repository.ts';

/**
 * The self-test's payment: a generic notification signed with the GATEWAY_SECRET this host knows.
 * The secret is looked up, never generated, and never printed (only where it came from).
 */

export interface GatewaySecret {
  value: string;
  /** Where it came from, for the report: never the value. */
  source: string;
}

/** The secret a development start generated and stored, as the doctor's secret checks read it; undefined when none. */
export async function storedGatewaySecret(db: Database | null): Promise<string | undefined> {
  if (!db) return undefined;
  // An un-migrated database has no system_config yet: then nothing is stored.
  const stored = await getConfigValues(db.kysely, ['secret.GATEWAY_SECRET']).catch(() => new Map<string, string>());
  return stored.get('secret.GATEWAY_SECRET') || undefined;
}

/** `--gateway-secret`, then the configuration (environment or .env), then the value stored in system_config. */
export function pickGatewaySecret(argument: string | undefined, configured: string | undefined, stored: string | undefined): GatewaySecret | null {
  if (argument) return { value: argument, source: 'from --gateway-secret' };
  if (configured?.trim()) return { value: configured, source: 'from the configuration' };
  if (stored) return { value: stored, source: 'stored in system_config' };
  return null;
}

export interface Payment {
  orderNo: string;
  transactionId: string;
  amount: string;
  currency: string;
  timestamp: number;
}

/** The form fields of a successful payment, HMAC-SHA256-signed; every call draws a fresh nonce. */
export function signedNotification(payment: Payment, secret: string): Record<string, string> {
  const params = {
    order_no: payment.orderNo,
    transaction_id: payment.transactionId,
    amount: payment.amount,
    currency: payment.currency,
    status: 'success',
    timestamp: String(payment.timestamp),
    nonce: randomBytes(16).toString('hex'),
    sign_type: 'HMAC-SHA256',
  };
  return { ...params, sign: computeSign(params, secret, 'HMAC-SHA256') };
}

/** The ✗ detail when there is nothing to sign with: how to provide the server's secret. */
export function missingSecretDetail(baseUrl: string): string {
  return (
    'not attempted: no GATEWAY_SECRET is known here to sign the payment notification with (not configured' +
    " and none stored in system_config); give the server's: " +
    `GATEWAY_SECRET=… npm run doctor -- --url ${baseUrl} --api-key … (or --gateway-secret …)`
  );
}

/** What to add to a rejected notification's line, by the server's error code. */
export function notifyHint(code: string | undefined, secret: GatewaySecret): string | null {
  switch (code) {
    case 'bad_signature':
      return `the GATEWAY_SECRET ${secret.source} is not the server's: give the server's with GATEWAY_SECRET=… or --gateway-secret …`;
    case 'replayed':
      return "is this host's clock within 300 s of the server's?";
    case 'forbidden':
      return "this host is outside the server's CALLBACK_IP_ALLOWLIST_GENERIC";
    default:
      return null;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** The order detail's `payments` must hold exactly one `applied` entry for the transaction (the duplicate is not applied again). */
export function appliedPaymentProblem(payments: unknown, transactionId: string): string | null {
  if (!Array.isArray(payments)) return 'the order detail has no payments list';
  const applied = payments.filter((p) => isRecord(p) && p.verdict === 'applied' && p.transaction_id === transactionId).length;
  if (applied === 1) return null;
  if (applied === 0) return `payments has no applied entry for ${transactionId}`;
  return `payments has ${applied} applied entries for ${transactionId} (the duplicate was applied again)`;
}
