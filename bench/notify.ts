import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import mysql from 'mysql2/promise';
import type { BenchRequest } from './load.ts';
import type { Scenario } from './scenarios.ts';

/**
 * The `notify` scenario: every request pays one distinct pending order, once, with a generic-gateway
 * notification signed here (the generic gateway's MD5 signature) by code independent of the service's signer.
 */

export const NOTIFY_AMOUNT = '12.34';
const INSERT_BATCH = 1000;

/** The generic gateway's signing string: non-empty parameters except `sign`, sorted by key (byte order), `k=v&…&key=<secret>`. */
export function md5Sign(params: Record<string, string>, secret: string): string {
  const text = Object.keys(params)
    .filter((k) => k !== 'sign' && params[k] !== '')
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  return createHash('md5').update(`${text}&key=${secret}`, 'utf8').digest('hex').toUpperCase();
}

/** A local merchant endpoint for the orders' notify_url: answers 200 `success` and counts what it got. */
export class NotifySink {
  requests = 0;
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static start(): Promise<NotifySink> {
    return new Promise((resolveSink, reject) => {
      let sink: NotifySink | undefined;
      const server = createServer((req, res) => {
        if (sink) sink.requests += 1;
        req.resume();
        req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('success'));
      });
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        sink = new NotifySink(server, `http://127.0.0.1:${port}/merchant/notify`);
        resolveSink(sink);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

export interface NotifyTarget {
  /** The implementation's base URL (its POST /api/orders makes the template order). */
  origin: string;
  /** The implementation's own database. */
  databaseUrl: string;
  /** Headers its POST /api/orders needs (ours: the API key). */
  createHeaders: Record<string, string>;
}

/**
 * Pending orders for one implementation. The first is created through the implementation's own
 * POST /api/orders; the rest are copies of that row (every column but id and order_no) written by
 * multi-row INSERTs, because creating tens of thousands over HTTP would take longer than the run.
 */
export class NotifyOrders {
  private readonly queue: string[] = [];
  private head = 0;
  private counter = 0;
  private template: Record<string, unknown> | null = null;
  created = 0;
  insertSeconds = 0;
  private readonly prefix: string;

  constructor(
    private readonly target: NotifyTarget,
    private readonly sinkUrl: string,
    tag: string,
  ) {
    this.prefix = `n${randomBytes(6).toString('base64url').replace(/[-_]/g, 'x')}${tag}`;
  }

  /** LIKE pattern matching these orders' numbers. */
  get prefixLike(): string {
    return `${this.prefix}%`;
  }

  get available(): number {
    return this.queue.length - this.head;
  }

  /** The next unpaid order number, or null when none is left. */
  take(): string | null {
    if (this.head >= this.queue.length) return null;
    return this.queue[this.head++] ?? null;
  }

  private nextOrderNo(): string {
    return this.prefix + (this.counter++).toString(36);
  }

  /** Makes sure at least `count` unused orders exist. */
  async ensure(count: number): Promise<void> {
    const missing = count - this.available;
    if (missing <= 0) return;
    const started = Date.now();
    const conn = await mysql.createConnection({ uri: this.target.databaseUrl, dateStrings: true, supportBigNumbers: true });
    try {
      if (!this.template) this.template = await this.createTemplate(conn);
      const columns = Object.keys(this.template).filter((c) => c !== 'id');
      const list = columns.map((c) => `\`${c}\``).join(', ');
      for (let done = 0; done < missing; done += INSERT_BATCH) {
        const orderNos = Array.from({ length: Math.min(INSERT_BATCH, missing - done) }, () => this.nextOrderNo());
        const rows = orderNos.map((no) => columns.map((c) => (c === 'order_no' ? no : this.template![c])));
        await conn.query(`INSERT INTO orders (${list}) VALUES ?`, [rows]);
        this.queue.push(...orderNos);
        this.created += orderNos.length;
      }
    } finally {
      await conn.end();
    }
    this.insertSeconds += (Date.now() - started) / 1000;
  }

  private async createTemplate(conn: mysql.Connection): Promise<Record<string, unknown>> {
    const orderNo = this.nextOrderNo();
    const res = await fetch(`${this.target.origin}/api/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.target.createHeaders },
      body: JSON.stringify({ order_no: orderNo, amount: NOTIFY_AMOUNT, currency: 'CNY', notify_url: this.sinkUrl }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`creating the template order failed: HTTP ${res.status} ${text.slice(0, 300)}`);
    const [rows] = await conn.query('SELECT * FROM orders WHERE order_no = ?', [orderNo]);
    const row = (rows as Array<Record<string, unknown>>)[0];
    if (!row || row.status !== 'pending') throw new Error(`template order ${orderNo} is not pending in ${this.target.databaseUrl}`);
    this.queue.push(orderNo);
    this.created += 1;
    return row;
  }

  /**
   * Waits until the implementation's delivery loop has delivered every outbox row of these orders (or
   * `timeoutMs` passed), so that its background work does not run into the next measurement.
   */
  async drainOutbox(timeoutMs: number): Promise<{ seconds: number; undelivered: number }> {
    const started = Date.now();
    const conn = await mysql.createConnection({ uri: this.target.databaseUrl });
    try {
      for (;;) {
        const [rows] = await conn.query("SELECT COUNT(*) AS n FROM notifications WHERE order_no LIKE ? AND status <> 'delivered'", [`${this.prefix}%`]);
        const undelivered = Number((rows as Array<{ n: number }>)[0]?.n ?? 0);
        if (undelivered === 0 || Date.now() - started > timeoutMs) return { seconds: Number(((Date.now() - started) / 1000).toFixed(1)), undelivered };
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      await conn.end();
    }
  }

  /** After the runs: how the database saw them (every accepted notification must have paid its order once). */
  async count(): Promise<{ paid_orders: number; outbox_rows: number; payment_log_rows: number }> {
    const conn = await mysql.createConnection({ uri: this.target.databaseUrl });
    try {
      const like = `${this.prefix}%`;
      const one = async (query: string) => {
        const [rows] = await conn.query(query, [like]);
        return Number((rows as Array<{ n: number }>)[0]?.n ?? 0);
      };
      return {
        paid_orders: await one("SELECT COUNT(*) AS n FROM orders WHERE order_no LIKE ? AND status = 'paid'"),
        outbox_rows: await one('SELECT COUNT(*) AS n FROM notifications WHERE order_no LIKE ?'),
        payment_log_rows: await one('SELECT COUNT(*) AS n FROM payment_logs WHERE order_no LIKE ?'),
      };
    } finally {
      await conn.end();
    }
  }
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/**
 * POST /notify, form body, one unused order per request with a unique transaction id, timestamp now and
 * a random nonce. Passing: 200 whose data names the order as paid. No order left → the worker stops.
 */
/** A POST /notify paying `orderNo` (success, fresh timestamp and nonce), MD5-signed as the generic gateway does. */
export function signedNotifyRequest(orderNo: string, secret: string): BenchRequest {
  const params: Record<string, string> = {
    order_no: orderNo,
    transaction_id: `T${orderNo}`,
    amount: NOTIFY_AMOUNT,
    currency: 'CNY',
    status: 'success',
    timestamp: String(Math.floor(Date.now() / 1000)),
    nonce: randomBytes(12).toString('hex'),
  };
  params.sign = md5Sign(params, secret);
  return { method: 'POST', path: '/notify', headers: FORM, body: new URLSearchParams(params).toString() };
}

export function notifyScenario(orders: NotifyOrders, secret: string): Scenario {
  const orderNoOf = new WeakMap<BenchRequest, string>();
  return {
    next: () => {
      const orderNo = orders.take();
      if (orderNo === null) return null;
      const req = signedNotifyRequest(orderNo, secret);
      orderNoOf.set(req, orderNo);
      return req;
    },
    check: (req, status, body) => {
      if (status !== 200) return `unexpected_status_${status}`;
      let data: { order_no?: unknown; status?: unknown } | undefined;
      try {
        data = (JSON.parse(body) as { data?: typeof data }).data;
      } catch {
        return 'unexpected_body';
      }
      if (data?.order_no !== orderNoOf.get(req)) return 'unexpected_body';
      return data?.status === 'paid' ? null : 'not_paid';
    },
  };
}
