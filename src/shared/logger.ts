import { pino, type Logger } from 'pino';

/** Paths pino masks wherever they appear in a log line: keys, secrets and signatures never reach logs. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.sign',
  '*.password',
  '*.secret',
  '*.apiKey',
  '*.api_key',
  '*.key',
  'secrets',
  'config.secrets',
];

export function createLogger(level: string): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}

/** Masks signature- and key-like query parameters in a URL before it is logged. */
export function redactUrl(url: string): string {
  if (!url.includes('=')) return url; // nothing the pattern could match (a busy path such as /notify has no query)
  return url.replace(/([?&](?:sign|signature|key|api_key|apikey|token|password|secret)=)[^&#]*/gi, '$1[redacted]');
}

export type { Logger };
