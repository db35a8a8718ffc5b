/**
 * Vitest glue for the rig: one SPIRE per test file, started in beforeAll and stopped in afterAll.
 * When a test of the file fails, the rig's logs are kept in `.rig-logs/` and their tails printed.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { type SpireRig, type StartSpireOptions, startSpire } from './spire.js';

/**
 * Registers the hooks and returns an accessor for the running rig.
 *
 * @example
 * const spire = useSpire({ trustDomain: 'td-a.test' });
 * it('...', async () => { await spire().createEntryAndWait({ spiffeId: 'spiffe://td-a.test/x' }); });
 */
export function useSpire(options: StartSpireOptions = {}): () => SpireRig {
  let rig: SpireRig | undefined;
  let failed = false;
  beforeAll(async () => {
    rig = await startSpire(options);
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') failed = true;
  });
  afterAll(async () => {
    if (!rig) return;
    if (failed) {
      const kept = rig.keepLogs();
      process.stderr.write(`SPIRE logs of ${rig.trustDomain} kept in ${kept}\n${rig.logs(60)}\n`);
    }
    await rig.stop();
  });
  return () => {
    if (!rig)
      throw new Error(
        'useSpire: the rig is not started (call it at the top of a describe/file, use it inside tests)',
      );
    return rig;
  };
}
