import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pidFromFile, startCpuMeter } from './cpu.ts';
import { runDelivery } from './delivery.ts';
import { runDeliveryDrain } from './delivery-drain.ts';
import { comparison, notifyTarget, ratiosAgainst, type Results } from './compare.ts';
import { runLoad, type LoadResult } from './load.ts';
import { NotifyOrders, NotifySink } from './notify.ts';
import { PHP_DATABASE_URL, PHP_DIR, PHP_ORIGIN, PHP_START_TIMEOUT_MS, phpPoolSize, PhpYardstick } from './php-yardstick.ts';
import { OrderBook, SCENARIOS, scenarioFor, type ScenarioName } from './scenarios.ts';
import {
  databaseUrl,
  logFileSummary,
  OURS_DB,
  prepareDatabases,
  removeLogFile,
  ROOT,
  startOurs,
  startYardstick,
  waitUntilAnswering,
  YARDSTICK_DB,
  type ServerChild,
} from './servers.ts';

/**
 * `npm run bench -- --soak [--soak-seconds 300] [--soak-rate R]`: the soak run of bench/soak.ts instead.
 * `npm run bench [-- --quick | --concurrency N --notify-concurrency N --duration S --warmup S --pool-size N
 * --log-level L --only a,b --skip-php --service-dir DIR --from-source --deliveries N --delivery-concurrency N --delivery-wait S]`
 * (DIR: another copy of the service, e.g. an earlier version, to compare; the service is compiled to dist/
 * and run with plain node as INSTALL.md does in production, or from src/ through tsx with --from-source)
 * Our service and both yardsticks of ../shared/bench — the minimal Node server (`yardstick`) and, unless
 * --skip-php, nginx + PHP-FPM (`php_yardstick`, started by its start.sh, checked by check.sh, stopped by
 * stop.sh) — on fresh MariaDB databases, driven in turn from this process with the same requests and load;
 * then, unless left out of --only, the `delivery` run of ours alone (bench/delivery.ts:
 * a fresh service process per NOTIFY_CONCURRENCY value, N paid orders delivered to a receiver here).
 * JSON on stdout and in bench/results/, progress on stderr. Exit 1 when any request failed or an event
 * was lost, repeated or left undelivered.
 */

// `--soak` is a separate run (bench/soak.ts) with its own options.
if (process.argv.includes('--soak')) {
  const { runSoak } = await import('./soak.ts');
  const code = await runSoak(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`[soak] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  });
  process.exit(code);
}
// `--only reconcile` is a separate run too (bench/reconcile.ts): ours alone, a fresh service per RECONCILE_CONCURRENCY value.
const { reconcileRequested, runReconcileBench } = await import('./reconcile.ts');
if (reconcileRequested(process.argv.slice(2))) {
  const code = await runReconcileBench(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`[bench reconcile] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  });
  process.exit(code);
}

const USAGE =
  'usage: npm run bench -- [--soak [--soak-seconds 300] [--soak-rate R]] [--quick] [--concurrency 32] [--notify-concurrency 64] [--duration 10] [--warmup 2] [--pool-size 16] [--log-level info] [--only create_order,query_status,notify,delivery | --only reconcile (options: bench/reconcile.ts)] [--skip-php] [--service-dir DIR] [--from-source] [--deliveries 3000] [--delivery-concurrency N] [--delivery-wait 60] [--delivery-light-senders 4] [--delivery-rate 1050] [--delivery-split-poll-ms 25] [--web-only]';
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '32' },
    'notify-concurrency': { type: 'string', default: '64' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'pool-size': { type: 'string', default: '16' },
    'log-level': { type: 'string', default: 'info' },
    'service-dir': { type: 'string' },
    only: { type: 'string' },
    'skip-php': { type: 'boolean', default: false },
    deliveries: { type: 'string', default: '3000' },
    'delivery-concurrency': { type: 'string' },
    'delivery-wait': { type: 'string', default: '60' },
    'delivery-light-senders': { type: 'string', default: '4' },
    'delivery-rate': { type: 'string', default: '1050' },
    'delivery-split-poll-ms': { type: 'string', default: '25' },
    'web-only': { type: 'boolean', default: false },
    'from-source': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.error(USAGE);
  process.exit(0);
}
const positive = (name: string, value: string | undefined, fallback: number): number => {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number\n${USAGE}`);
  return n;
};
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
if (!LOG_LEVELS.includes(args['log-level'])) throw new Error(`--log-level must be one of ${LOG_LEVELS.join(', ')}\n${USAGE}`);
/** The delivery run is ours alone and not a closed-loop load, so it is not one of SCENARIOS. */
const ALL_SCENARIOS = [...SCENARIOS, 'delivery'] as const;
const only = args.only
  ?.split(',')
  .map((s) => s.trim())
  .filter(Boolean) ?? [...ALL_SCENARIOS];
const unknown = only.filter((s) => !(ALL_SCENARIOS as readonly string[]).includes(s));
if (unknown.length > 0 || only.length === 0) throw new Error(`--only takes a comma-separated list of ${ALL_SCENARIOS.join(', ')}\n${USAGE}`);
const scenarios = SCENARIOS.filter((s) => only.includes(s));
const withDelivery = only.includes('delivery');
/** NOTIFY_CONCURRENCY values of the delivery runs: the service default, then --delivery-concurrency if given. */
const DEFAULT_NOTIFY_CONCURRENCY = 16;
/** NOTIFY_CONCURRENCY of the paced runs unless --delivery-concurrency is given (INSTALL §9's advice for high rates). */
const PACED_NOTIFY_CONCURRENCY = 64;
/** Connections of the paced delivery run's sender (open loop: more are in flight only when the service lags). */
const PACED_CONNECTIONS = 256;
/** Payments delivered before a paced run is measured: a fresh process's JIT warm-up would otherwise be a backlog that open-loop load never lets it clear. */
const PACED_WARMUP_ORDERS = 2000;
const params = {
  quick: args.quick,
  concurrency: Math.round(positive('concurrency', args.concurrency, 32)),
  notify_concurrency: Math.round(positive('notify-concurrency', args['notify-concurrency'], 64)),
  duration_s: positive('duration', args.duration, args.quick ? 2 : 10),
  warmup_s: positive('warmup', args.warmup, args.quick ? 1 : 2),
  ours_pool_size: Math.round(positive('pool-size', args['pool-size'], 16)),
  ours_dir: args['service-dir'] ? resolve(args['service-dir']) : ROOT,
  ours_notify_worker: !args['web-only'],
  ours_run: `${args['from-source'] ? 'node --import tsx src/main.ts (--from-source)' : 'node dist/src/main.js (compiled by tsc -p tsconfig.build.json at the start of the run)'}, with the node options of npm run start:built`,
  yardstick_pool_size: 32, // fixed in minimal-notify.cjs
  php_yardstick: args['skip-php']
    ? 'left out (--skip-php)'
    : `${PHP_DIR}/start.sh (nginx on ${PHP_ORIGIN} → PHP-FPM static pool → PDO, fresh database bench_php), check.sh before the runs, stop.sh after`,
  php_yardstick_pool_size: phpPoolSize(), // pm.max_children in php/php-fpm.conf: one persistent MariaDB connection per PHP-FPM child
  ours_log_level: args['log-level'],
  ours_log:
    'stdout (pino JSON, one line per request at info) written to a temporary file, counted, then deleted; the yardsticks log nothing (nginx access_log off)',
  requests_per_target:
    'every scenario sends the same requests to the three servers (same paths, parameters, bodies and x-api-key header, which the yardsticks ignore); ' +
    'only the origin, the order-number prefix and the database the notify orders are copied into differ',
  scenarios: withDelivery ? [...scenarios, 'delivery'] : scenarios,
  deliveries: Math.round(positive('deliveries', args.deliveries, 3000)),
  delivery_notify_concurrency: [
    DEFAULT_NOTIFY_CONCURRENCY,
    ...(args['delivery-concurrency'] !== undefined
      ? [Math.round(positive('delivery-concurrency', args['delivery-concurrency'], DEFAULT_NOTIFY_CONCURRENCY))]
      : []),
  ],
  delivery_wait_s: positive('delivery-wait', args['delivery-wait'], 60),
  delivery_light_senders: Math.round(positive('delivery-light-senders', args['delivery-light-senders'], 4)),
  delivery_paced_rate: Math.round(positive('delivery-rate', args['delivery-rate'], 1050)),
  delivery_paced_seconds: 10,
  delivery_split_poll_ms: Math.round(positive('delivery-split-poll-ms', args['delivery-split-poll-ms'], 25)),
  delivery_method:
    'ours only, after the other scenarios (their servers stopped): per NOTIFY_CONCURRENCY value a fresh service process on bench_service (other settings as above, NOTIFY_POLL_INTERVAL_MS default); ' +
    'N pending orders (notify_orders method) whose notify_url is a receiver in this process answering 200 at once; each paid by one POST /notify (64 concurrent, as the notify scenario); ' +
    'deliveries_per_s = distinct events / (last arrival − first /notify sent); notify_to_delivery_ms per event = arrival − the moment its /notify answered 200 (one monotonic clock); ' +
    'then up to delivery_wait_s for the stragglers, 1 s for late duplicates, and the notifications rows counted by status. ' +
    'Runs: saturated (the /notify senders of the notify scenario), light load (--delivery-light-senders closed-loop /notify senders) and paced ' +
    '(/notify sent open-loop at --delivery-rate per second for delivery_paced_seconds, as payments arrive, up to 256 connections, after 2,000 warm-up payments delivered and not counted; ' +
    'NOTIFY_CONCURRENCY 64, or --delivery-concurrency when given), each a fresh process; ' +
    'then drain (bench/delivery-drain.ts): a NOTIFY_WORKER=false process accepts N payments, is stopped, and a fresh worker delivers the backlog: deliveries_per_s = (N − 1) / (last arrival − first arrival)',
  notify_orders:
    "pending orders, one per notification: the first made through each implementation's own POST /api/orders (notify_url = a local sink answering 200), " +
    'the rest copied from that row (every column but id and order_no) by multi-row INSERT into its database before the warm-up and again before the measured run (sized from the warm-up rate)',
  notify_request:
    'POST /notify, form: order_no, transaction_id, amount 12.34, currency CNY, status success, timestamp now, random nonce, MD5 sign of the generic gateway; passes only as 200 with data.status paid',
  notify_delivery:
    "with --web-only ours runs with NOTIFY_WORKER=false (no delivery loop, its outbox rows stay pending, as the yardsticks' do); otherwise " +
    'ours runs its delivery loop during its notify run, POSTing each event to the sink (NOTIFY_ALLOW_PRIVATE_NETWORKS=true); before the yardsticks (which deliver nothing) are measured, the bench waits until ours has delivered every event (notify_checks.ours.outbox_drain_after_run_s)',
};
const concurrencyOf = (scenario: ScenarioName) => (scenario === 'notify' ? params.notify_concurrency : params.concurrency);
/** Orders ready before the notify warm-up: enough for this rate (more is topped up after it). */
const NOTIFY_WARMUP_RATE = 6000;
/** Orders for the measured notify run: this multiple of the warm-up rate (at least NOTIFY_WARMUP_RATE) times the duration. */
const NOTIFY_HEADROOM = 2.5;
/** How long ours may take, after its notify run, to deliver the events it queued (before the yardsticks run). */
const NOTIFY_DRAIN_TIMEOUT_MS = 120_000;
const mysqlUrl = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

const children: ServerChild[] = [];
const stopAll = async () => {
  await Promise.all(children.map((c) => c.stop()));
};
/** Stops everything and removes the service's log file (after a failure: the JSON is not written). */
const abandon = () => stopAll().finally(() => children.forEach((c) => removeLogFile(c.logFile)));
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping the servers`);
    void abandon().finally(() => process.exit(130));
  });
}
// The run bounds itself: past its expected length plus a generous margin, give up and clean up.
const deliveryBudgetS = withDelivery ? params.delivery_notify_concurrency.length * (90 + params.delivery_wait_s + params.deliveries / 200) : 0;
const servedImpls = args['skip-php'] ? 2 : 3;
const phpStartBudgetS = args['skip-php'] ? 0 : PHP_START_TIMEOUT_MS / 1000 + 120;
const budgetMs =
  (scenarios.length * servedImpls * (params.duration_s + params.warmup_s) + 240 + NOTIFY_DRAIN_TIMEOUT_MS / 1000 + deliveryBudgetS + phpStartBudgetS) * 1000;
const watchdog = setTimeout(() => {
  log(`run exceeded ${budgetMs / 1000} s; stopping the servers`);
  void abandon().finally(() => process.exit(2));
}, budgetMs);

function redactUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

function summary(r: LoadResult): string {
  const errs = r.errors ? `, ${r.errors} ERRORS ${JSON.stringify(r.error_kinds)}` : '';
  return `${r.requests} req in ${r.duration_s} s = ${r.throughput_rps} req/s, p50 ${r.latency_ms.p50} ms, p99 ${r.latency_ms.p99} ms${errs}`;
}

function serverCommand(name: string): string {
  if (name === 'ours') return `${params.ours_run} (in ${params.ours_dir})`;
  if (name === 'php_yardstick')
    return `GATEWAY_SECRET=<this run's> ${PHP_DIR}/start.sh (nginx + PHP-FPM, pm.max_children ${params.php_yardstick_pool_size ?? '?'})`;
  return 'node ../shared/bench/minimal-notify.cjs';
}

/** Starts the PHP yardstick (start.sh, check.sh); when that fails, says why and the run goes on without it. */
async function startPhp(gatewaySecret: string): Promise<{ server: PhpYardstick | null; status: Record<string, unknown> }> {
  // Its PDO DSN is fixed to 127.0.0.1:3306: on another MariaDB server its figures would not be comparable.
  const db = new URL(mysqlUrl);
  if (!['127.0.0.1', 'localhost'].includes(db.hostname) || (db.port || '3306') !== '3306') {
    const error = `the PHP yardstick uses MariaDB on 127.0.0.1:3306 (php/lib/bootstrap.php), not ${db.host} of BENCH_MYSQL_URL`;
    log(`PHP YARDSTICK LEFT OUT: ${error}`);
    return { server: null, status: { error } };
  }
  const server = new PhpYardstick(gatewaySecret);
  children.push(server);
  log(`starting the PHP yardstick (${PHP_DIR}/start.sh, then check.sh)`);
  try {
    const report = await server.start();
    log(`PHP yardstick ready on ${PHP_ORIGIN} (php-fpm ${report.php_fpm_pid}, nginx ${report.nginx_pid}); check.sh passed`);
    return { server, status: { origin: PHP_ORIGIN, database: 'bench_php (recreated by start.sh)', ...report } };
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    log(`PHP YARDSTICK FAILED TO START, continuing without it: ${error}`);
    await server.stop();
    return { server: null, status: { error, output_tail: server.tail().slice(-15), stop_output: server.stopOutput } };
  }
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const loadBefore = loadavg().map((n) => Number(n.toFixed(2)));
  log(`preparing databases on ${redactUrl(mysqlUrl)}`);
  const { version: mariadb, pidFile } = await prepareDatabases(mysqlUrl);
  const mariadbPid = pidFromFile(pidFile);
  const apiKey = `pcs_bench_${randomBytes(32).toString('base64url')}`;
  const gatewaySecret = randomBytes(32).toString('hex');
  const logFile = resolve(tmpdir(), `pcs-bench-ours-${process.pid}-${startedAt.getTime()}.log`);
  const ours = await startOurs({
    mysqlUrl,
    apiKey,
    poolSize: params.ours_pool_size,
    gatewaySecret,
    logLevel: params.ours_log_level,
    logFile,
    serviceDir: params.ours_dir,
    fromSource: args['from-source'],
    // --web-only: like the yardstick, ours only writes its outbox rows during the orders/notify scenarios (no delivery loop).
    env: args['web-only'] ? { NOTIFY_WORKER: 'false' } : undefined,
  });
  children.push(ours);
  const yardstick = await startYardstick(mysqlUrl, gatewaySecret);
  children.push(yardstick);
  const sink = await NotifySink.start();
  log(`starting ours (pid ${ours.pid}, ${ours.origin}) and yardstick (pid ${yardstick.pid}, ${yardstick.origin})`);
  await Promise.all([waitUntilAnswering(ours, '/readyz', {}), waitUntilAnswering(yardstick, '/query_order?order_no=__ready', {})]);
  log('both answer');
  const php = args['skip-php'] ? null : await startPhp(gatewaySecret);

  const impls = [
    {
      name: 'ours',
      child: ours,
      book: new OrderBook('o'),
      notifyOrders: new NotifyOrders(
        { origin: ours.origin, databaseUrl: databaseUrl(mysqlUrl, OURS_DB), createHeaders: { 'x-api-key': apiKey } },
        sink.url,
        'o',
      ),
    },
    {
      name: 'yardstick',
      child: yardstick,
      book: new OrderBook('y'),
      notifyOrders: new NotifyOrders({ origin: yardstick.origin, databaseUrl: databaseUrl(mysqlUrl, YARDSTICK_DB), createHeaders: {} }, sink.url, 'y'),
    },
    ...(php?.server
      ? [
          {
            name: 'php_yardstick',
            child: php.server,
            book: new OrderBook('p'),
            notifyOrders: new NotifyOrders({ origin: PHP_ORIGIN, databaseUrl: PHP_DATABASE_URL, createHeaders: {} }, sink.url, 'p'),
          },
        ]
      : []),
  ];
  const results: Results = Object.fromEntries(impls.map((i) => [i.name, {}]));
  const notifyChecks: Record<string, unknown> = {};
  for (const scenario of scenarios) {
    for (const impl of impls) {
      const out = results[impl.name]!;
      if (impl.child.exit !== null) {
        out[scenario] = { skipped: `server exited (${impl.child.exit})` };
        continue;
      }
      if (scenario === 'query_status' && impl.book.orderNos.length === 0) {
        out[scenario] = { skipped: 'no order was created' };
        continue;
      }
      const abort = new AbortController();
      void impl.child.exited.then(() => abort.abort());
      const concurrency = concurrencyOf(scenario);
      const context = { book: impl.book, apiKey, notifyOrders: impl.notifyOrders, gatewaySecret };
      const load = { origin: impl.child.origin, concurrency, signal: abort.signal, ...scenarioFor(scenario, context) };
      if (scenario === 'notify') {
        await impl.notifyOrders.ensure(Math.ceil(NOTIFY_WARMUP_RATE * params.warmup_s));
        log(`${impl.name} notify: ${impl.notifyOrders.available} pending orders ready`);
      }
      log(`${impl.name} ${scenario}: warm-up ${params.warmup_s} s`);
      const warm = await runLoad({ ...load, durationMs: params.warmup_s * 1000 });
      if (warm.errors) log(`  warm-up errors: ${JSON.stringify(warm.error_kinds)}`);
      if (scenario === 'notify') {
        // A slow warm-up (JIT, a busy machine) must not starve the measured run: never plan for less than the warm-up rate.
        await impl.notifyOrders.ensure(Math.ceil(Math.max(warm.ok_rps * NOTIFY_HEADROOM, NOTIFY_WARMUP_RATE) * params.duration_s));
        log(`${impl.name} notify: ${impl.notifyOrders.available} pending orders ready (warm-up ${warm.ok_rps}/s)`);
        await sleep(500);
      }
      log(`${impl.name} ${scenario}: measuring ${params.duration_s} s at concurrency ${concurrency}`);
      // The PHP yardstick's server is two process trees: nginx and PHP-FPM.
      const meter = startCpuMeter({ server: impl.child instanceof PhpYardstick ? impl.child.pids : impl.child.pid, mariadb: mariadbPid });
      const loaded = await runLoad({ ...load, durationMs: params.duration_s * 1000 });
      const result = { ...loaded, concurrency, cpu_ms_per_request: meter.perRequest(loaded.requests) };
      out[scenario] = result;
      if (loaded.exhausted) log(`  ${impl.name} RAN OUT of pending orders: the figures cover less than ${params.duration_s} s`);
      if (scenario === 'notify') {
        // Exactly once under load: each accepted notification paid one order and queued one outbox row.
        const accepted = warm.ok + loaded.ok;
        const counts = await impl.notifyOrders.count();
        // Ours delivers its outbox to the sink; let it finish before anything else is measured.
        const drain = impl.name === 'ours' && !args['web-only'] ? await impl.notifyOrders.drainOutbox(NOTIFY_DRAIN_TIMEOUT_MS) : null;
        notifyChecks[impl.name] = {
          accepted_notifications: accepted,
          ...counts,
          consistent: counts.paid_orders === accepted && counts.outbox_rows === accepted,
          orders_created: impl.notifyOrders.created,
          orders_insert_s: Number(impl.notifyOrders.insertSeconds.toFixed(2)),
          ...(drain ? { outbox_drain_after_run_s: drain.seconds, undelivered_after_drain: drain.undelivered, sink_requests_so_far: sink.requests } : {}),
        };
        log(`  ${impl.name} notify check: ${JSON.stringify(notifyChecks[impl.name])}`);
      }
      log(`  ${summary(result)}; CPU ms/req ${JSON.stringify(result.cpu_ms_per_request)}`);
      if (impl.child.exit !== null) log(`  ${impl.name} EXITED during the run (${impl.child.exit})`);
      await sleep(500); // let the database settle between runs
    }
  }

  log('stopping the servers');
  await stopAll();
  await sink.close();
  const oursLog = await logFileSummary(ours.logFile, 5);
  removeLogFile(ours.logFile);

  // The delivery runs: ours alone, fresh processes, nothing else running. Three views of the loop:
  // saturated (/notify at full concurrency shares the CPU), light load (a few senders: how fast a
  // merchant hears in normal operation) and drain (a backlog delivered by a worker: the loop's capacity).
  type DeliveryRun = Awaited<ReturnType<typeof runDelivery>>['result'] & {
    send_concurrency: number;
    split_poll_ms: number | null;
    exit: string | null;
    log_tail: string[];
  };
  const deliveryRuns: DeliveryRun[] = [];
  let drainRun: Awaited<ReturnType<typeof runDeliveryDrain>> | null = null;
  if (withDelivery) {
    const pacedConcurrency =
      args['delivery-concurrency'] !== undefined ? (params.delivery_notify_concurrency.at(-1) ?? PACED_NOTIFY_CONCURRENCY) : PACED_NOTIFY_CONCURRENCY;
    const pacedPlan = { rate: params.delivery_paced_rate, orders: params.delivery_paced_rate * params.delivery_paced_seconds };
    const deliveryOptions = (
      notifyConcurrency: number,
      sendConcurrency: number,
      tag: string,
      paced?: { rate: number; orders: number },
      split?: { pollMs: number },
    ) => ({
      mysqlUrl,
      apiKey,
      gatewaySecret,
      poolSize: params.ours_pool_size,
      logLevel: params.ours_log_level,
      logFile: resolve(tmpdir(), `pcs-bench-delivery-${process.pid}-${startedAt.getTime()}-${tag}.log`),
      serviceDir: params.ours_dir,
      fromSource: args['from-source'],
      mariadbPid,
      notifyConcurrency,
      orders: paced?.orders ?? params.deliveries,
      sendConcurrency,
      sendRate: paced?.rate,
      warmupOrders: paced ? PACED_WARMUP_ORDERS : undefined,
      split,
      waitMs: params.delivery_wait_s * 1000,
      log,
      onChild: (c: ServerChild) => children.push(c),
    });
    const plans: Array<{ notifyConcurrency: number; send: number; paced?: { rate: number; orders: number }; split?: { pollMs: number } }> = [
      ...params.delivery_notify_concurrency.map((n) => ({ notifyConcurrency: n, send: params.notify_concurrency })),
      { notifyConcurrency: DEFAULT_NOTIFY_CONCURRENCY, send: params.delivery_light_senders },
      // The paced runs use NOTIFY_CONCURRENCY=64, or --delivery-concurrency when given: a high payment rate needs more deliveries in flight.
      { notifyConcurrency: pacedConcurrency, send: PACED_CONNECTIONS, paced: pacedPlan },
      { notifyConcurrency: pacedConcurrency, send: PACED_CONNECTIONS, paced: pacedPlan, split: { pollMs: params.delivery_split_poll_ms } },
    ];
    for (const [i, plan] of plans.entries()) {
      await sleep(500);
      const { result, child } = await runDelivery(deliveryOptions(plan.notifyConcurrency, plan.send, `${i}`, plan.paced, plan.split));
      deliveryRuns.push({
        ...result,
        send_concurrency: plan.send,
        split_poll_ms: plan.split?.pollMs ?? null,
        exit: child.exit,
        log_tail: child.tail().slice(-10),
      });
      const senders =
        (plan.paced ? `/notify paced at ${plan.paced.rate}/s` : `${plan.send} /notify senders`) +
        (plan.split ? `, web + worker processes (poll ${plan.split.pollMs} ms)` : '');
      log(
        `  delivery NOTIFY_CONCURRENCY=${plan.notifyConcurrency}, ${senders}: ${result.delivered_events}/${result.orders} events, ${result.deliveries_per_s} deliveries/s, ` +
          `notify→delivery p50 ${result.notify_to_delivery_ms.p50} ms p99 ${result.notify_to_delivery_ms.p99} ms, duplicates ${result.duplicates}, missing ${result.missing_events}, ` +
          `db ${JSON.stringify(result.db.by_status)}`,
      );
    }
    await sleep(500);
    drainRun = await runDeliveryDrain(deliveryOptions(DEFAULT_NOTIFY_CONCURRENCY, params.notify_concurrency, 'drain'));
    log(
      `  delivery drain (worker, NOTIFY_CONCURRENCY=${DEFAULT_NOTIFY_CONCURRENCY}): ${drainRun.delivered_events}/${drainRun.orders} events, ${drainRun.deliveries_per_s} deliveries/s, ` +
        `duplicates ${drainRun.duplicates}, missing ${drainRun.missing_events}, db ${JSON.stringify(drainRun.db.by_status)}, CPU ms/delivery ${JSON.stringify(drainRun.cpu_ms_per_delivery)}`,
    );
  }
  clearTimeout(watchdog);
  const deliveryProblems =
    deliveryRuns.filter((r) => r.notify_requests.errors > 0 || r.duplicates > 0 || r.missing_events > 0 || !r.db.all_delivered || r.malformed_bodies > 0)
      .length +
    (drainRun &&
    (drainRun.duplicates > 0 ||
      drainRun.missing_events > 0 ||
      !drainRun.db.all_delivered ||
      drainRun.delivered_by_web_only_process > 0 ||
      drainRun.notify_errors > 0)
      ? 1
      : 0);
  const saturated = deliveryRuns[0];
  const pacedTarget = (run: DeliveryRun) => ({
    notify_rate_per_s: run.notify_requests.paced_rate_per_s,
    notify_ok_rps: run.notify_requests.ok_rps,
    notify_p99_ms: run.notify_requests.latency_ms.p99,
    deliveries_per_s: run.deliveries_per_s,
    p50_ms: run.notify_to_delivery_ms.p50,
    p99_ms: run.notify_to_delivery_ms.p99,
    at_least_1000_per_s: (run.deliveries_per_s ?? 0) >= 1000,
    p50_at_most_100ms: run.notify_to_delivery_ms.p50 <= 100,
  });
  const light = deliveryRuns.find((r) => r.send_concurrency === params.delivery_light_senders);
  const paced = deliveryRuns.find((r) => r.notify_requests.paced_rate_per_s !== null && r.split_poll_ms === null);
  const pacedSplit = deliveryRuns.find((r) => r.notify_requests.paced_rate_per_s !== null && r.split_poll_ms !== null);
  const delivery = withDelivery
    ? {
        target: {
          note: 'targets: >= 1,000 deliveries/s and notify→delivery p50 <= 100 ms with a healthy receiver; each figure is given for every run',
          saturated: saturated && {
            send_concurrency: saturated.send_concurrency,
            deliveries_per_s: saturated.deliveries_per_s,
            p50_ms: saturated.notify_to_delivery_ms.p50,
            p99_ms: saturated.notify_to_delivery_ms.p99,
            at_least_1000_per_s: (saturated.deliveries_per_s ?? 0) >= 1000,
            p50_at_most_100ms: saturated.notify_to_delivery_ms.p50 <= 100,
          },
          light_load: light && {
            send_concurrency: light.send_concurrency,
            notify_ok_rps: light.notify_requests.ok_rps,
            deliveries_per_s: light.deliveries_per_s,
            p50_ms: light.notify_to_delivery_ms.p50,
            p99_ms: light.notify_to_delivery_ms.p99,
            p50_at_most_100ms: light.notify_to_delivery_ms.p50 <= 100,
          },
          paced_one_process: paced && pacedTarget(paced),
          paced_web_and_worker: pacedSplit && { ...pacedTarget(pacedSplit), worker_poll_ms: pacedSplit.split_poll_ms },
          drain: drainRun && { deliveries_per_s: drainRun.deliveries_per_s, at_least_1000_per_s: (drainRun.deliveries_per_s ?? 0) >= 1000 },
        },
        runs: deliveryRuns,
        drain: drainRun,
      }
    : undefined;

  const ratios = ratiosAgainst(results, 'yardstick', scenarios);
  const ratiosVsPhp = ratiosAgainst(results, 'php_yardstick', scenarios);
  const all = Object.values(results).flatMap((r) => Object.values(r));
  const totalErrors = all.reduce((n, r) => n + ('errors' in r ? r.errors : 0), 0);
  const skipped = all.filter((r) => 'skipped' in r).length;
  const exhausted = all.filter((r) => 'exhausted' in r && r.exhausted).length;
  const inconsistent = Object.values(notifyChecks).filter((c) => !(c as { consistent: boolean }).consistent).length;
  const servers = Object.fromEntries(
    impls.map(({ name, child }) => [
      name,
      {
        command: serverCommand(name),
        exit: child.exit,
        log_lines: child.lineCount,
        log_tail: child.tail().slice(-10),
        ...(name === 'ours' ? { stdout_log: oursLog ? { lines: oursLog.lines, bytes: oursLog.bytes, tail: oursLog.tail } : null } : {}),
        ...(child instanceof PhpYardstick ? { stop_output: child.stopOutput } : {}),
      },
    ]),
  );
  const target = notifyTarget(results);
  const phpMeasured = Object.values(results.php_yardstick ?? {}).some((r) => 'ok_rps' in r);
  const phpReport = php === null ? { measured: false, left_out: '--skip-php' } : { measured: phpMeasured, ...php.status };

  const document = {
    benchmark: withDelivery ? 'orders, notify and delivery' : 'orders and notify',
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    ok: totalErrors === 0 && skipped === 0 && exhausted === 0 && inconsistent === 0 && deliveryProblems === 0,
    total_errors: totalErrors,
    // Left out (--skip-php) or {error} when start.sh or check.sh failed: then only the Node yardstick was measured.
    php_yardstick: phpReport,
    notify_target: target,
    comparison: comparison(results, scenarios),
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model ?? 'unknown',
      memory_gb: Number((totalmem() / 2 ** 30).toFixed(1)),
      platform: `${platform()} ${release()}`,
      node: process.version,
      mariadb,
      // Other work on the machine skews every figure; a high load average before the run is a warning sign.
      loadavg_1_5_15_before: loadBefore,
      loadavg_1_5_15_after: loadavg().map((n) => Number(n.toFixed(2))),
    },
    parameters: {
      ...params,
      mysql_url: redactUrl(mysqlUrl),
      note: 'throughput_rps counts all answers, ok_rps only passing ones; ratios are ours / yardstick (the Node one) and ratios_vs_php ours / php_yardstick (ok_rps, latency, server CPU); cpu_ms_per_request: CPU time of the server process tree (nginx + PHP-FPM for php_yardstick), of mariadbd (shared by all) and of this load generator, per request',
    },
    results,
    ratios,
    ratios_vs_php: ratiosVsPhp,
    notify_checks: notifyChecks,
    notify_sink_requests: sink.requests,
    ...(delivery ? { delivery } : {}),
    servers,
  };
  const json = JSON.stringify(document, null, 2);
  const dir = resolve(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = resolve(dir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${json}\n`);
  process.stdout.write(`${json}\n`);
  log(`written to ${file}`);
  if (target) {
    const phpPart =
      target.notifications_per_s.php_yardstick !== null
        ? `; php_yardstick ${target.notifications_per_s.php_yardstick}/s p99 ${target.p99_ms.php_yardstick} ms`
        : '';
    log(
      `notify: ours ${target.notifications_per_s.ours}/s p99 ${target.p99_ms.ours} ms; yardstick ${target.notifications_per_s.yardstick}/s p99 ${target.p99_ms.yardstick} ms${phpPart}`,
    );
  }
  if (php && php.server === null) log(`PHP YARDSTICK NOT MEASURED: ${String(php.status.error)} (see php_yardstick in the JSON)`);
  for (const r of deliveryRuns)
    log(
      `delivery (NOTIFY_CONCURRENCY=${r.notify_concurrency_setting}): ${r.deliveries_per_s} deliveries/s, p50 ${r.notify_to_delivery_ms.p50} ms, p99 ${r.notify_to_delivery_ms.p99} ms`,
    );
  if (!document.ok)
    log(
      `RUN HAD PROBLEMS: ${totalErrors} failed requests, ${skipped} skipped, ${exhausted} out of orders, ${inconsistent} inconsistent notify checks, ${deliveryProblems} delivery runs with lost, repeated or undelivered events (see results, notify_checks, delivery and servers.*.log_tail)`,
    );
  return document.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    log(`failed: ${err instanceof Error ? err.message : String(err)}`);
    await abandon();
    process.exit(1);
  },
);
