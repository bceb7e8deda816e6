/** Display helpers for console templates: times, ages and raw payloads, all as plain text (EJS escapes). */

/** `2026-11-25 14:03:07.123` → `2026-11-25 14:03:07` (stored times are UTC). */
export function fmtTime(dbTime: string | null | undefined): string {
  return dbTime ? dbTime.slice(0, 19) : '—';
}

/** A duration in seconds as `42 s`, `7 min`, `3 h 5 min`, `2 d 4 h`. */
export function fmtAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

export interface PrettyPayload {
  format: 'json' | 'form' | 'text' | 'empty';
  text: string;
}

const FORM = /^[^=&\s]+=[^&\s]*(&[^=&\s]+=[^&\s]*)*$/;
const LIMIT = 65_536;

/**
 * A raw request as an operator wants to read it: JSON indented, a form one `key = value` per line (decoded),
 * anything else verbatim. The result is text: the template escapes it, so a hostile payload stays inert.
 */
export function prettyPayload(raw: string | null | undefined): PrettyPayload {
  if (raw === null || raw === undefined || raw.trim() === '') return { format: 'empty', text: '' };
  const text = raw.length > LIMIT ? `${raw.slice(0, LIMIT)}\n…` : raw;
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return { format: 'json', text: JSON.stringify(JSON.parse(trimmed), null, 2) };
    } catch {
      // not JSON after all: shown verbatim below
    }
  }
  if (FORM.test(trimmed)) {
    try {
      const lines = [...new URLSearchParams(trimmed)].map(([k, v]) => `${k} = ${v}`);
      return { format: 'form', text: lines.join('\n') };
    } catch {
      // undecodable: verbatim
    }
  }
  return { format: 'text', text };
}
