import type { Response } from 'express';
import type { ErrorCode, FieldError } from '../shared/errors.ts';

/**
 * A JSON answer. GET and HEAD go through res.json (ETag, 304, no body for HEAD); any other method's answer
 * is never fresh, so it is written as res.json would write it minus the ETag, whose hash costs more than the
 * rest of a gateway acknowledgement's response.
 */
function sendJson(res: Response, status: number, body: object): void {
  const method = res.req.method;
  if (method === 'GET' || method === 'HEAD') {
    res.status(status).json(body);
    return;
  }
  const text = JSON.stringify(body);
  res.statusCode = status;
  if (!res.getHeader('Content-Type')) res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/** `{"success": true, "data": …, "message": "…"}`. */
export function sendData(res: Response, data: unknown, message = 'ok', status = 200): void {
  sendJson(res, status, { success: true, data, message });
}

export function sendError(res: Response, status: number, code: ErrorCode, message: string, errors?: FieldError[]): void {
  sendJson(res, status, { success: false, code, message, ...(errors && errors.length > 0 ? { errors } : {}) });
}
