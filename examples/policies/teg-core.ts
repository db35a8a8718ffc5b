import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type DecisionLogEntry, httpAuthorization, PolicyEngine } from '../../src/policy/index.js';

type Decisions = { 'tachikoma/service_graph/decision': { allow: boolean; reason?: string } };

/**
 * TEG core behind the service-graph policy: the bundle file is watched and reloaded in place,
 * and every request is authorized before it reaches the handler.
 */
export async function startTegCore(
  bundlePath: string,
  getCaller: (req: IncomingMessage) => string | undefined,
  decisionLog: (entry: DecisionLogEntry) => void,
): Promise<{ server: Server; engine: PolicyEngine<Decisions> }> {
  const engine = await PolicyEngine.watch<Decisions>(bundlePath, {
    name: 'service-graph',
    decisionLog,
    // Query strings may carry secrets: keep them out of the decision log.
    redactInput: (input) => ({ ...(input as Record<string, unknown>), query: '[redacted]' }),
  });
  engine.on('reload', (e) => console.info(`policy now at revision ${e.revision}`));
  engine.on('error', (err) => console.error(err.message)); // the previous bundle stays in force

  const guard = httpAuthorization({
    engine,
    entrypoint: 'tachikoma/service_graph/decision',
    getCaller, // the mTLS peer's SPIFFE ID, or a validated JWT-SVID subject
    target: 'spiffe://tachikoma.internal/service/teg-core',
  });
  const server = createServer(async (req, res) => {
    if (!(await guard(req, res))) return; // 403 with the reason, 401, 400 or 500 already sent
    res.end('teg-core says hello\n');
  });
  server.on('close', () => void engine.close());
  return { server, engine };
}
