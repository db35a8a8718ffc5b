import { PolicyEngine } from '../../src/policy/index.js';

type RateLimit = { 'tachikoma/rate_limit/limit': number; 'tachikoma/rate_limit/tier': string };

/** Looks up an agent's request budget, then raises its reputation and looks again. */
export async function agentLimits(bundlePath: string, agentId: string): Promise<number[]> {
  await using engine = await PolicyEngine.fromBundleFile<RateLimit>(bundlePath);
  const caller = `spiffe://tachikoma.internal/agent/${agentId}`;

  const before = engine.evaluate('tachikoma/rate_limit/limit', { caller });
  // before.result is typed number | undefined; before.id and before.revision identify the decision.

  // Application data is layered over the bundle's data.json and survives bundle reloads.
  engine.patchData(['agents', agentId, 'reputation_score'], 6000);
  const after = engine.evaluate('tachikoma/rate_limit/limit', { caller });

  return [before.result ?? 100, after.result ?? 100];
}
