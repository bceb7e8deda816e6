/** Stable error codes and the one place they map to HTTP statuses. */
export const ERROR_STATUS = {
  validation_failed: 400,
  unauthorized: 401,
  bad_signature: 401,
  forbidden: 403,
  not_found: 404,
  order_exists: 409,
  invalid_state: 409,
  not_queryable: 409,
  not_refundable: 409,
  refund_exists: 409,
  refund_exceeds_paid: 409,
  replayed: 409,
  amount_mismatch: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal_error: 500,
  gateway_error: 502,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface FieldError {
  path: string;
  message: string;
}

export class AppError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly errors?: FieldError[],
  ) {
    super(message);
    this.name = 'AppError';
    this.status = ERROR_STATUS[code];
  }
}

export class ValidationError extends AppError {
  constructor(message: string, errors?: FieldError[]) {
    super('validation_failed', message, errors);
  }
}

export class NotFoundError extends AppError {
  constructor(message: string) {
    super('not_found', message);
  }
}

export class InvalidStateError extends AppError {
  constructor(message: string) {
    super('invalid_state', message);
  }
}
