/**
 * True when a JSON text holds a number literal in exponent notation (`1e3`, `2E-2`) outside strings.
 * JSON.parse would silently turn `1e3` into 1000; money must arrive as written, so callers refuse it.
 */
export function hasExponentNumber(json: string): boolean {
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if ((c === 'e' || c === 'E') && /[0-9.]/.test(json[i - 1] ?? '')) {
      return true;
    }
  }
  return false;
}
