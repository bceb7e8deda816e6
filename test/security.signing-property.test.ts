import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { flattenParams } from '../src/callbacks/params.ts';
import { signedDelivery } from '../src/notifications/signed-body.ts';
import { ambiguityOf, signingString } from '../src/shared/signing.ts';

/**
 * A5's signing string must be injective on the parameter sets we accept: two different sets (empty values
 * dropped, as A5 skips them) never share a string, so never a signature.
 */
const RUNS = Number(process.env.PROPERTY_RUNS ?? 1000);
if (process.env.FC_SEED) fc.configureGlobal({ seed: Number(process.env.FC_SEED) });
const SECRET = 'property-secret-0123456789';

const nameArb = fc.string({ unit: fc.constantFrom(...'abcdekmnstyAZ019_.-'), minLength: 1, maxLength: 8 });
const valueArb = fc
  .array(fc.oneof(fc.constantFrom('&', '=', '&&', '==', '&=', ' & ', 'a', 'key', 'Tom', '中'), nameArb), { maxLength: 8 })
  .map((parts) => parts.join(''));
const setArb = fc.dictionary(
  nameArb.filter((k) => k !== 'sign' && k !== '__proto__'),
  valueArb,
  { maxKeys: 8 },
);

const nonEmpty = (params: Record<string, string>) => Object.fromEntries(Object.entries(params).filter(([, v]) => v !== ''));
const accepted = (params: Record<string, string>) => Object.keys(params).length > 0 && flattenParams(params).ok;

/** Every way of cutting the pairs' text at its `&` characters into new `k=v` pairs: what a re-splitting attacker can send. */
function resplits(params: Record<string, string>, cuts: number[]): Record<string, string> | null {
  const body = signingString(params, SECRET).slice(0, -`&key=${SECRET}`.length);
  const amps = [...body.matchAll(/&/g)].map((m) => m.index);
  const chosen = new Set(cuts.map((c) => amps[c % Math.max(amps.length, 1)]).filter((i) => i !== undefined));
  const out: Record<string, string> = {};
  let start = 0;
  for (const end of [...[...chosen].sort((a, b) => a - b), body.length]) {
    const pair = body.slice(start, end);
    const eq = pair.indexOf('=');
    // No name, a repeated name (refused by the form decoding) or an empty value (not signed, so another string).
    if (eq <= 0 || eq === pair.length - 1 || Object.hasOwn(out, pair.slice(0, eq))) return null;
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
    start = end + 1;
  }
  return out;
}

describe('A5 signing string is injective on accepted parameter sets', () => {
  it('two distinct accepted sets never share a signing string', () => {
    fc.assert(
      fc.property(setArb, setArb, (a, b) => {
        fc.pre(accepted(a) && accepted(b));
        const same = JSON.stringify(Object.entries(nonEmpty(a)).sort()) === JSON.stringify(Object.entries(nonEmpty(b)).sort());
        expect(signingString(a, SECRET) === signingString(b, SECRET)).toBe(same);
      }),
      { numRuns: RUNS },
    );
  });

  it('every re-split of an accepted set that differs from it is refused', () => {
    fc.assert(
      fc.property(setArb, fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), (original, cuts) => {
        const a = nonEmpty(original);
        fc.pre(accepted(a));
        const b = resplits(a, cuts);
        // Only a re-split that sorts back into the same string carries the same sign: that is the attack.
        if (b === null || signingString(b, SECRET) !== signingString(a, SECRET)) return;
        const differs = JSON.stringify(Object.entries(b).sort()) !== JSON.stringify(Object.entries(a).sort());
        if (differs) expect(flattenParams(b).ok).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('the refusal is exactly the &name= sequence in a value or a name outside [A-Za-z0-9_.-]{1,64}', () => {
    expect(ambiguityOf({ body: 'Tom & Jerry', attach: 'a=b', x: '&=', y: 'a&', z: '&a' })).toBeUndefined();
    expect(ambiguityOf({ body: 'Foo&currency=USD' })).toMatch(/body must not contain/);
    expect(ambiguityOf({ body: 'x&a.b-c_9=' })).toMatch(/body/);
    expect(ambiguityOf({ 'a=b': 'x' })).toMatch(/name/);
    expect(ambiguityOf({ [`k${'x'.repeat(64)}`]: 'x' })).toMatch(/name/);
  });
});

describe('the outbound notification signer cannot produce an ambiguous string', () => {
  const settings = { secret: `whsec_${Buffer.alloc(32, 1).toString('base64')}`, signType: 'MD5' as const };
  const event = {
    event_id: 'evt_1',
    type: 'order.paid',
    order_no: 'O1',
    transaction_id: 'T1',
    amount: '1.00',
    currency: 'CNY',
    status: 'paid',
    paid_at: null,
    seq: 1,
  };

  it('signs a normal event and refuses one whose field could swallow a pair', () => {
    expect(JSON.parse(signedDelivery(JSON.stringify(event), settings, new Date()).body)).toMatchObject({ order_no: 'O1', sign_type: 'MD5' });
    expect(() => signedDelivery(JSON.stringify({ ...event, transaction_id: 'T1&amount=0.01' }), settings, new Date())).toThrow(/ambiguous/);
  });
});
