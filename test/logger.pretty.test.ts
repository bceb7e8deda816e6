import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');

/** Development on a terminal gets readable lines; redaction holds there too; JSON stays the default. */
describe('logger output', () => {
  const run = async (pretty: boolean) => {
    const script = `import { createLogger } from './src/shared/logger.ts';
const log = createLogger('info', { pretty: ${pretty} });
log.info({ req: { headers: { authorization: 'Bearer top-secret-key' } }, order_no: 'O1' }, 'order paid');`;
    const { stdout } = await promisify(execFile)(TSX, ['-e', script], { cwd: ROOT, env: { PATH: process.env.PATH, NO_COLOR: '1', FORCE_COLOR: '0' } });
    return stdout;
  };

  it('pretty: one readable line, not JSON, secrets still redacted', async () => {
    const out = await run(true);
    expect(out).toContain('order paid');
    expect(out).toContain('[redacted]');
    expect(out).not.toContain('top-secret-key');
    expect(() => JSON.parse(out.trim().split('\n')[0]!)).toThrow();
  });

  it('default: JSON lines, redacted', async () => {
    const line = JSON.parse((await run(false)).trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ msg: 'order paid', order_no: 'O1', req: { headers: { authorization: '[redacted]' } } });
  });
});
