import { createHash } from 'node:crypto';

/** How much of a rejected request's body is stored: enough to see what it was, too little to fill the disk. */
export const REJECTED_EXCERPT_BYTES = 4096;

/** What a rejected request leaves in payment_logs: an excerpt of the body, its full size and its SHA-256. */
export interface RejectedEvidence {
  callbackData: string;
  callbackBytes: number;
  callbackSha256: string;
  unverified: true;
}

/**
 * Evidence of a request refused before verification. Size and hash are of the bytes as received (the body,
 * or the query string when there is none); the excerpt is the start of the text, cut at a character boundary.
 */
export function rejectedEvidence(raw: string, rawBody: Buffer | undefined): RejectedEvidence {
  const received = rawBody && rawBody.length > 0 ? rawBody : Buffer.from(raw, 'utf8');
  return {
    callbackData: utf8Prefix(raw, REJECTED_EXCERPT_BYTES),
    callbackBytes: received.length,
    callbackSha256: createHash('sha256').update(received).digest('hex'),
    unverified: true,
  };
}

/** The longest start of `text` whose UTF-8 encoding fits in `maxBytes`, never splitting a character. */
export function utf8Prefix(text: string, maxBytes: number): string {
  // A UTF-16 unit encodes to at most 3 bytes (a surrogate pair, two units, to 4).
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // Back off continuation bytes (10xxxxxx) to the first byte of the character that does not fit.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}
