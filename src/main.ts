import { createApp, reconcilerOf, refundCheckerOf } from './app.ts';
import { bootstrap } from './bootstrap.ts';
import { ConfigError } from './config.ts';
import { createRedisRateLimitStore } from './http/rate-limit-store.ts';
import { closeServer, createServer, listen } from './server.ts';
import { openDatabase } from './db/database.ts';
import { createDispatcher } from './notifications/dispatcher.ts';
import { createRuntimeSettings } from './settings/runtime-settings.ts';
import { createLogger } from './shared/logger.ts';
import { systemClock } from './shared/time.ts';
import { startMaintenance } from './system/maintenance.ts';
import { configWeaknesses, describeWeakness } from './system/secret-strength.ts';
import { startHint } from './system/start-hints.ts';

/** Whether `promise` settled within `ms` (it keeps running either way). */
function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  return Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    gaveUp,
  ]).finally(() => clearTimeout(timer));
}

/** config → db → migrate → secrets → listen; SIGTERM/SIGINT stop taking requests, drain what is in flight, close the pools. */
async function main(): Promise<void> {
  const { config, db, readDb, generated, applied } = await bootstrap();
  // Readable lines for a developer at a terminal; JSON everywhere else (log collectors, production).
  const logger = createLogger(config.logLevel, { pretty: config.env === 'development' && process.stdout.isTTY === true });
  if (applied.length > 0) logger.info({ migrations: applied }, 'migrations applied');
  // Production refuses these at start (config.ts); elsewhere they run, and say what production would refuse.
  for (const weak of configWeaknesses(config))
    logger.warn({ setting: weak.name }, `weak secret: production refuses to start with it: ${describeWeakness(weak)}`);

  const redis = config.redis ? createRedisRateLimitStore(config.redis, logger) : null;
  const settings = createRuntimeSettings({ db, config, clock: systemClock, logger });
  await settings.start();
  // The delivery loop gets its own small MySQL pool, so a burst of callbacks cannot starve it of connections.
  const worker = config.notify.worker;
  const deliveryDb = worker && db.engine === 'mysql' ? openDatabase(config.database.url, { poolSize: Math.min(config.notify.concurrency, 8) + 2 }) : db;
  const dispatcher = createDispatcher({ db: deliveryDb, config, logger, clock: systemClock, retryScheduleMs: settings.retryScheduleMs });
  const onEventQueued = worker ? dispatcher.wake : undefined;
  const app = createApp({
    config,
    db,
    readDb,
    logger,
    rateLimitStore: redis?.store,
    loginRateLimitStore: redis?.loginStore,
    rejectRateLimitStore: redis?.rejectStore,
    onEventQueued,
    deliveryMetrics: worker ? dispatcher.metrics : undefined,
    settings,
    reconcileDb: deliveryDb,
  });
  const reconciler = reconcilerOf(app);
  const refundChecker = refundCheckerOf(app);
  const server = createServer(app, config);
  const { port, host } = await listen(server, config.port, config.host);
  const scheme = config.tls ? 'https' : 'http';
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  console.log(`Payment callback service listening on ${scheme}://${shownHost}:${port} (${config.env}, ${db.engine})`);
  if (generated.apiKey || generated.adminPassword || generated.names.length > 0) {
    console.log('\nGenerated for this development instance (shown once, stored in the database):');
    if (generated.apiKey) console.log(`  API key:        ${generated.apiKey}`);
    if (generated.adminPassword) console.log(`  Admin password: ${generated.adminPassword}`);
    const others = generated.names.filter((n) => n !== 'ADMIN_PASSWORD');
    if (others.length > 0) console.log(`  Also generated: ${others.join(', ')} (npm run secrets shows them)`);
    console.log('');
  }

  if (worker) {
    dispatcher.start();
    // The reconciler works where deliveries do (the worker of a web + worker layout): it is leased, so several may run.
    reconciler.start();
    refundChecker.start();
  } else logger.warn('NOTIFY_WORKER=false: this process delivers no notifications and asks no gateway; another instance on this database must');
  const stopMaintenance = startMaintenance(db, systemClock, logger, { retentionDays: config.retentionDays });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, shutdownTimeoutMs: config.shutdownTimeoutMs }, 'shutting down');
    const deadline = performance.now() + config.shutdownTimeoutMs;
    const left = () => Math.max(0, deadline - performance.now());
    try {
      // Everything that uses the pools drains first, within one deadline: requests, deliveries and their records, housekeeping, settings reads.
      const [requests, deliveries, reconciling, housekeeping, settingsRead] = await Promise.all([
        closeServer(server, left()),
        dispatcher.stop(left()),
        Promise.all([reconciler.stop(left()), refundChecker.stop(left())]).then(([orders, refunds]) => orders && refunds),
        stopMaintenance(left()),
        within(settings.stop(), left()),
      ]);
      const drained = requests && deliveries && reconciling && housekeeping && settingsRead;
      if (!drained)
        logger.warn(
          { requests, deliveries, reconciling, housekeeping, settingsRead },
          'shutdown: SHUTDOWN_TIMEOUT_MS passed with work in flight (false above); closing anyway',
        );
      if (deliveryDb !== db) await deliveryDb.close();
      await redis?.close();
      await readDb?.close();
      await db.close();
      logger.info('stopped');
      process.exit(drained ? 0 : 1);
    } catch (err) {
      logger.error({ err }, 'error during shutdown');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else console.error('Failed to start:', err instanceof Error ? err.message : err);
  const hint = startHint(err);
  if (hint) console.error(hint);
  process.exit(1);
});
