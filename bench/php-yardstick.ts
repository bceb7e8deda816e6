import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import type { ServerChild } from './servers.ts';
import { YARDSTICK_DIR } from './servers.ts';

/**
 * The PHP yardstick (../shared/bench/php: nginx → PHP-FPM → PDO/MariaDB on 127.0.0.1:4105, database
 * bench_php), driven like the other servers. Its own start.sh / check.sh / stop.sh manage the daemons;
 * this wraps them in the ServerChild shape the run loop uses.
 */

export const PHP_DIR = resolve(YARDSTICK_DIR, 'php');
export const PHP_ORIGIN = 'http://127.0.0.1:4105';
/** Fixed in php/lib/bootstrap.php and start.sh: root on 127.0.0.1:3306, database bench_php. */
export const PHP_DATABASE_URL = 'mysql://root@127.0.0.1:3306/bench_php';
const RUN_DIR = '/tmp/bench-php';
/** start.sh may apt-install nginx and PHP first. */
export const PHP_START_TIMEOUT_MS = 600_000;
const SCRIPT_TIMEOUT_MS = 60_000;
const TAIL_LINES = 40;

interface ScriptResult {
  code: number | null;
  output: string;
}

/** Runs one of the yardstick's scripts with its output in a file: the daemons it starts must not hold a pipe of ours open. */
function runScript(name: string, env: NodeJS.ProcessEnv, timeoutMs: number, onSpawn?: (pid: number | undefined) => void): Promise<ScriptResult> {
  const file = resolve(tmpdir(), `pcs-bench-php-${name}-${process.pid}-${Date.now()}.log`);
  const fd = openSync(file, 'w');
  return new Promise<ScriptResult>((done) => {
    let proc: ReturnType<typeof spawn>;
    try {
      proc = spawn('bash', [resolve(PHP_DIR, name)], { cwd: PHP_DIR, env, stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd); // the script has its own copy
    }
    onSpawn?.(proc.pid);
    const timer = setTimeout(() => {
      try {
        if (proc.pid !== undefined) process.kill(-proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    const finish = (code: number | null, extra = '') => {
      clearTimeout(timer);
      const output = (existsSync(file) ? readFileSync(file, 'utf8') : '') + extra;
      rmSync(file, { force: true });
      done({ code, output });
    };
    proc.on('error', (err) => finish(null, `spawn error: ${err.message}\n`));
    proc.on('exit', (code, signal) => finish(code, signal ? `killed by ${signal} (timeout ${timeoutMs / 1000} s?)\n` : ''));
  });
}

const lastLines = (text: string, n: number) =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-n);

/** Pid from one of the daemons' pid files, if it names a live process. */
function livePid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(resolve(RUN_DIR, file), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface PhpStartReport {
  start_output: string[];
  check_passed: boolean;
  check_output: string[];
  php_fpm_pid: number;
  nginx_pid: number;
}

/** nginx + PHP-FPM as one server under test; `pid` is PHP-FPM's master, `pids` both masters (for the CPU meter). */
export class PhpYardstick implements ServerChild {
  readonly name = 'php_yardstick';
  readonly origin = PHP_ORIGIN;
  readonly logFile = null;
  exit: string | null = null;
  lineCount = 0;
  readonly exited: Promise<void>;
  pids: number[] = [];
  stopOutput: string[] = [];
  private lines: string[] = [];
  private launched = false;
  private stopping: Promise<void> | null = null;
  private startScriptPid: number | undefined;
  private monitor: NodeJS.Timeout | null = null;
  private markExited: () => void = () => undefined;

  constructor(private readonly gatewaySecret: string) {
    this.exited = new Promise<void>((r) => (this.markExited = r));
  }

  get pid(): number | undefined {
    return this.pids[0];
  }

  tail(): string[] {
    return [...this.lines];
  }

  private record(text: string): void {
    for (const line of lastLines(text, TAIL_LINES)) {
      this.lineCount += 1;
      this.lines.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
      if (this.lines.length > TAIL_LINES) this.lines.shift();
    }
  }

  private env(): NodeJS.ProcessEnv {
    const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG'];
    return { ...Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]])), GATEWAY_SECRET: this.gatewaySecret };
  }

  /** start.sh (fresh bench_php), then check.sh; throws with the scripts' output when either fails. */
  async start(): Promise<PhpStartReport> {
    // Daemons started outside this run would keep their own secret and data, and stop.sh at the end would stop them.
    const running = ['php-fpm.pid', 'nginx.pid'].filter((f) => livePid(f) !== undefined);
    if (running.length > 0)
      throw new Error(`a PHP yardstick is already running (${running.map((f) => `${RUN_DIR}/${f}`).join(', ')}); stop it with ${PHP_DIR}/stop.sh first`);
    this.launched = true;
    const started = await runScript('start.sh', this.env(), PHP_START_TIMEOUT_MS, (pid) => (this.startScriptPid = pid));
    this.startScriptPid = undefined;
    this.record(started.output);
    if (started.code !== 0) throw new Error(`start.sh failed (exit ${started.code}): ${lastLines(started.output, 4).join(' | ')}`);
    const fpm = livePid('php-fpm.pid');
    const nginx = livePid('nginx.pid');
    if (fpm === undefined || nginx === undefined) throw new Error(`start.sh succeeded but ${RUN_DIR}/php-fpm.pid or nginx.pid names no live process`);
    this.pids = [fpm, nginx];
    const check = await runScript('check.sh', this.env(), SCRIPT_TIMEOUT_MS);
    const checkLines = check.output.split('\n').filter((l) => /^\s*(ok|FAIL)\s/.test(l));
    if (check.code !== 0)
      throw new Error(
        `check.sh failed (exit ${check.code}): ${checkLines.filter((l) => l.includes('FAIL')).join(' | ') || lastLines(check.output, 8).join(' | ')}`,
      );
    this.watch();
    return {
      start_output: lastLines(started.output, 10),
      check_passed: true,
      check_output: checkLines.map((l) => l.trim()),
      php_fpm_pid: fpm,
      nginx_pid: nginx,
    };
  }

  /** Marks the server as exited when either master disappears (the run loop then stops driving it). */
  private watch(): void {
    this.monitor = setInterval(() => {
      const gone = this.pids.filter((pid) => !existsSync(`/proc/${pid}`));
      if (gone.length === 0 || this.exit !== null) return;
      this.exit = `master process ${gone.join(', ')} gone`;
      this.record(this.daemonLogs());
      this.markExited();
    }, 1000);
    this.monitor.unref();
  }

  private daemonLogs(): string {
    return ['php-fpm.log', 'nginx-error.log']
      .map((f) => resolve(RUN_DIR, f))
      .filter((f) => existsSync(f))
      .map((f) =>
        lastLines(readFileSync(f, 'utf8'), 5)
          .map((l) => `${f}: ${l}`)
          .join('\n'),
      )
      .join('\n');
  }

  /** stop.sh, once, and only if this run started the daemons (also after a failed or interrupted start). */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.monitor) clearInterval(this.monitor);
      if (!this.launched) return;
      if (this.startScriptPid !== undefined) {
        try {
          process.kill(-this.startScriptPid, 'SIGKILL');
        } catch {
          // start.sh already finished
        }
      }
      // The daemons' own logs only tell something when the start failed or a master died.
      const logs = this.pids.length === 0 || this.exit !== null ? this.daemonLogs() : '';
      if (logs) this.record(logs);
      const stopped = await runScript('stop.sh', this.env(), SCRIPT_TIMEOUT_MS);
      this.stopOutput = lastLines(stopped.output, 6);
      this.record(stopped.output);
      if (stopped.code !== 0) process.stderr.write(`[bench] PHP yardstick stop.sh failed (exit ${stopped.code}): ${this.stopOutput.join(' | ')}\n`);
      if (this.exit === null) this.exit = 'stopped by stop.sh';
      this.markExited();
    })();
    return this.stopping;
  }
}

/** pm.max_children of the PHP-FPM pool, as configured in the yardstick's php-fpm.conf. */
export function phpPoolSize(): number | null {
  try {
    const m = /^pm\.max_children\s*=\s*(\d+)/m.exec(readFileSync(resolve(PHP_DIR, 'php-fpm.conf'), 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
