import type { Response } from 'express';
import type { ErrorCode, FieldError } from '../shared/errors.ts';

/** `{"success": true, "data": …, "message": "…"}` (DESIGN A3). */
export function sendData(res: Response, data: unknown, message = 'ok', status = 200): void {
  res.status(status).json({ success: true, data, message });
}

export function sendError(res: Response, status: number, code: ErrorCode, message: string, errors?: FieldError[]): void {
  res.status(status).json({ success: false, code, message, ...(errors && errors.length > 0 ? { errors } : {}) });
}
