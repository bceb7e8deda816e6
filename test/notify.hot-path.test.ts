import { get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import express from 'express';
import { pino } from 'pino';
import request from 'supertest';
import { describe, expect, it, vi } from 'vitest';
import { sendData, sendError } from '../src/http/envelope.ts';
import { requestLogger } from '../src/http/request-logger.ts';
import { newEventId } from '../src/orders/order-event.ts';
import { REDACT_PATHS } from '../src/shared/logger.ts';
import { toDbTime } from '../src/shared/time.ts';

/** A logger configured like production's, writing its lines into an array. */
function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).trim().split('\n')) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: pino({ level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, stream) };
}

describe('request log lines', () => {
  it('one line per request with its id; an error line keeps the redaction of secrets', async () => {
    const { lines, logger } = capture();
    const app = express();
    app.use(requestLogger(logger));
    app.get('/ok', (req, res) => {
      req.log?.info({ note: 'from the handler' }, 'inside');
      res.json({ ok: true });
    });
    app.get('/fails', (_req, res) => {
      res.err = Object.assign(new Error('boom'), { secret: 'S3CRET-VALUE', sign: 'SIGN-VALUE' });
      res.status(500).json({ ok: false });
    });
    await request(app).get('/ok?sign=ABC&page=2').set('X-Request-Id', 'req-1').expect(200);
    await request(app).get('/fails').set('X-Request-Id', 'req-2').expect(500);
    await new Promise((resolve) => setImmediate(resolve));

    const inside = lines.find((l) => l.msg === 'inside') as { req?: { id?: string } } | undefined;
    expect(inside?.req?.id).toBe('req-1');
    const ok = lines.find((l) => l.msg === 'request completed');
    expect(ok).toMatchObject({ level: 30, req: { id: 'req-1', method: 'GET', url: '/ok?sign=[redacted]&page=2' }, res: { statusCode: 200 } });
    const failed = lines.find((l) => l.msg === 'request errored') as { err?: Record<string, unknown> } | undefined;
    expect(failed).toMatchObject({ level: 50, req: { id: 'req-2' }, res: { statusCode: 500 } });
    expect(failed?.err).toMatchObject({ message: 'boom', secret: '[redacted]', sign: '[redacted]' });
    expect(JSON.stringify(lines)).not.toMatch(/S3CRET-VALUE|SIGN-VALUE|=ABC/);
    expect(lines.filter((l) => String(l.msg).startsWith('request '))).toHaveLength(2);
  });

  it('logs a request the client abandoned once, at warn', async () => {
    const { lines, logger } = capture();
    const app = express();
    app.use(requestLogger(logger));
    let arrived!: () => void;
    const got = new Promise<void>((resolve) => (arrived = resolve));
    app.get('/hang', () => arrived());
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const req = get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hang`);
      req.on('error', () => undefined);
      await got;
      req.destroy();
      await vi.waitFor(() => expect(lines.some((l) => l.msg === 'request aborted')).toBe(true));
    } finally {
      server.closeAllConnections();
      server.close();
    }
    expect(lines.filter((l) => String(l.msg).startsWith('request '))).toEqual([expect.objectContaining({ level: 40, msg: 'request aborted' })]);
  });

  it('follows the level of the logger it was given', async () => {
    const { lines, logger } = capture();
    const app = express();
    app.use(requestLogger(logger));
    logger.level = 'warn'; // after the middleware was made: its lines still follow
    app.get('/ok', (_req, res) => res.json({ ok: true }));
    app.get('/missing', (_req, res) => res.status(404).json({ ok: false }));
    await request(app).get('/ok').expect(200);
    await request(app).get('/missing').expect(404);
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines.map((l) => [l.level, l.msg])).toEqual([[40, 'request completed']]);
  });
});

describe('JSON envelope', () => {
  const app = express();
  app.get('/data', (_req, res) => sendData(res, { n: 1 }));
  app.post('/data', (_req, res) => sendData(res, { n: 'ü' }, 'created', 201));
  app.post('/error', (_req, res) => sendError(res, 503, 'unavailable', 'try later'));

  it('answers a POST like res.json, without an ETag (a POST answer is never fresh)', async () => {
    const res = await request(app).post('/data').expect(201);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers['content-length']).toBe(String(Buffer.byteLength(JSON.stringify(res.body))));
    expect(res.headers.etag).toBeUndefined();
    expect(res.body).toEqual({ success: true, data: { n: 'ü' }, message: 'created' });
    const failed = await request(app).post('/error').expect(503);
    expect(failed.body).toEqual({ success: false, code: 'unavailable', message: 'try later' });
  });

  it('keeps ETag and 304 for GET', async () => {
    const first = await request(app).get('/data').expect(200);
    expect(first.headers.etag).toBeTruthy();
    await request(app).get('/data').set('If-None-Match', first.headers.etag!).expect(304);
  });
});

describe('hot-path helpers', () => {
  it('event ids stay distinct random 128-bit hex across refills of their pool', () => {
    const ids = Array.from({ length: 1000 }, newEventId);
    for (const id of ids) expect(id).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('toDbTime gives each instant its own text when instants alternate, and refuses invalid dates', () => {
    const a = new Date('2026-01-02T03:04:05.678Z');
    const b = new Date('2027-12-31T23:59:59.999Z');
    const c = new Date('2020-02-29T00:00:00.000Z');
    for (let i = 0; i < 3; i++) {
      expect(toDbTime(a)).toBe('2026-01-02 03:04:05.678');
      expect(toDbTime(b)).toBe('2027-12-31 23:59:59.999');
      expect(toDbTime(c)).toBe('2020-02-29 00:00:00.000');
      expect(toDbTime(a)).toBe('2026-01-02 03:04:05.678');
    }
    expect(() => toDbTime(new Date(Number.NaN))).toThrow(RangeError);
    expect(() => toDbTime(new Date(Number.NaN))).toThrow(RangeError);
  });
});
