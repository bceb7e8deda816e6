import type { Generated } from 'kysely';

/** Row types of the tables created in migrations/. Times are UTC strings `YYYY-MM-DD HH:MM:SS.mmm`. */

export interface OrdersTable {
  id: Generated<number>;
  order_no: string;
  amount_minor: number;
  currency: string;
  status: string;
  payment_method: string | null;
  subject: string | null;
  transaction_id: string | null;
  callback_url: string | null;
  notify_url: string | null;
  metadata: string | null;
  seq: Generated<number>;
  flagged: Generated<number>;
  paid_at: string | null;
  created_at: string;
  updated_at: string;
  /** A pending order past this time is closed (after asking its gateway); null for orders older than expiry. */
  expires_at: Generated<string | null>;
  /** When the reconciler next looks at the order (query or expiry); null: nothing left to do. */
  reconcile_at: Generated<string | null>;
  /** Position in RECONCILE_SCHEDULE. */
  reconcile_step: Generated<number>;
  /** The claim of the instance asking the gateway now. */
  reconcile_lease: Generated<string | null>;
  /** Minor units refunded and settled. */
  refunded_minor: Generated<number>;
  /** Minor units held by pending refunds (never more than amount − refunded together). */
  refund_reserved_minor: Generated<number>;
}

export interface SandboxRefundsTable {
  id: Generated<number>;
  refund_no: string;
  order_no: string;
  amount_minor: number;
  /** ISO 4217 */
  currency: string;
  /** refund_success | refund_failed */
  status: string;
  created_at: string;
}

export interface RefundsTable {
  id: Generated<number>;
  refund_no: string;
  order_no: string;
  gateway: string;
  amount_minor: number;
  currency: string;
  /** pending | succeeded | failed */
  status: string;
  reason: string | null;
  gateway_refund_id: string | null;
  failure_reason: string | null;
  requested_by: string;
  /** When the refund is next sent or asked about at its gateway; null once settled. */
  check_at: string | null;
  check_step: Generated<number>;
  check_lease: Generated<string | null>;
  last_answer: string | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
}

export interface PaymentLogsTable {
  id: Generated<number>;
  order_no: string | null;
  gateway: string;
  kind: string;
  transaction_id: string | null;
  amount_minor: number | null;
  currency: string | null;
  status: string | null;
  verdict: string;
  flagged: Generated<number>;
  message: string | null;
  payment_data: string | null;
  callback_data: string;
  remote_ip: string | null;
  created_at: string;
  /** Size in bytes of the request as received; set when callback_data holds only an excerpt of it (a rejected request). */
  callback_bytes: number | null;
  /** SHA-256 (hex) of the request as received, with callback_bytes. */
  callback_sha256: string | null;
  /** 1: refused before verification (allowlist, signature, shape, timestamp), so possibly anyone's; listed apart. */
  unverified: Generated<number>;
}

export interface NotificationsTable {
  id: Generated<number>;
  event_id: string;
  order_no: string;
  type: string;
  seq: number;
  payload: string;
  url: string;
  status: string;
  attempts: Generated<number>;
  /** Position in NOTIFY_RETRY_SCHEDULE; a resend starts the schedule again. */
  schedule_step: Generated<number>;
  next_attempt_at: string;
  lease_owner: string | null;
  lease_expires_at: string | null;
  last_error: string | null;
  delivered_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface NotificationAttemptsTable {
  id: Generated<number>;
  notification_id: number;
  attempt_no: number;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_excerpt: string | null;
  /** 1: answered over a connection to a non-public address (only possible with private networks allowed). */
  private_target: Generated<number>;
}

export interface SystemConfigTable {
  id: Generated<number>;
  config_key: string;
  config_value: string;
  description: string | null;
  created_at: string;
  updated_at: string;
}

export interface ApiKeysTable {
  id: Generated<number>;
  name: string;
  key_prefix: string;
  key_hash: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface ReplayNoncesTable {
  id: Generated<number>;
  scope: string;
  nonce: string;
  expires_at: string;
}

/** migrations/0002_console.ts: an operator's review of a flagged payment-log entry. */
export interface PaymentLogReviewsTable {
  id: Generated<number>;
  payment_log_id: number;
  reviewed_by: string;
  note: string;
  reviewed_at: string;
}

/** migrations/0002_console.ts: who changed what (console actions, settings), old and new value as JSON text. */
export interface AuditLogTable {
  id: Generated<number>;
  actor: string;
  action: string;
  target: string | null;
  old_value: string | null;
  new_value: string | null;
  remote_ip: string | null;
  created_at: string;
}

/** migrations/0005: every time the reconciler asked a gateway about an order (or closed it there), and what came of it. */
export interface ReconcileAttemptsTable {
  id: Generated<number>;
  order_no: string;
  gateway: string;
  /** schedule | expiry | manual */
  trigger: string;
  /** query | close */
  action: string;
  /** What the gateway said the payment is (paid, pending, closed, failed, not_found), when it answered. */
  gateway_state: string | null;
  /** recovered | unchanged | closed | mismatch | error | … (the metric's outcome label) */
  outcome: string;
  message: string | null;
  /** The start of the gateway's answer. */
  answer: string | null;
  duration_ms: number;
  created_at: string;
}

/** migrations/0005: the sandbox gateway's own books (what it would answer a query with). */
export interface SandboxPaymentsTable {
  id: Generated<number>;
  order_no: string;
  transaction_id: string;
  status: string;
  amount_minor: number;
  currency: string;
  /** 1: paid with "lose the notification": no callback was sent. */
  notification_lost: Generated<number>;
  created_at: string;
}

/** migrations/0007: a console account. Flags are 0/1 integers on both engines. */
export interface OperatorsTable {
  id: Generated<number>;
  /** 1-64 of [A-Za-z0-9_.@-], compared exactly. */
  username: string;
  /** viewer | operator | admin */
  role: string;
  /** `scrypt$N$r$p$salt$hash` (src/operators/password.ts). */
  password_hash: string;
  /** 1: a one-time password; nothing else in the console works until it is changed. */
  must_change_password: Generated<number>;
  disabled: Generated<number>;
  /** Failed sign-ins since the last success or lock. */
  failed_logins: Generated<number>;
  locked_until: string | null;
  /** Named by every session cookie: bumping it ends the account's sessions. */
  session_epoch: Generated<number>;
  totp_secret: string | null;
  totp_enabled: Generated<number>;
  created_at: string;
  updated_at: string;
  last_login_at: string | null;
}

/** migrations/0007: an operator's one-time TOTP recovery codes (hashed); used_at once spent. */
export interface OperatorRecoveryCodesTable {
  id: Generated<number>;
  operator_id: number;
  code_hash: string;
  used_at: string | null;
  created_at: string;
}

export interface DB {
  orders: OrdersTable;
  payment_logs: PaymentLogsTable;
  notifications: NotificationsTable;
  notification_attempts: NotificationAttemptsTable;
  system_config: SystemConfigTable;
  api_keys: ApiKeysTable;
  replay_nonces: ReplayNoncesTable;
  payment_log_reviews: PaymentLogReviewsTable;
  audit_log: AuditLogTable;
  reconcile_attempts: ReconcileAttemptsTable;
  sandbox_payments: SandboxPaymentsTable;
  refunds: RefundsTable;
  sandbox_refunds: SandboxRefundsTable;
  operators: OperatorsTable;
  operator_recovery_codes: OperatorRecoveryCodesTable;
}
