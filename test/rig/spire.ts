/**
 * A real SPIRE deployment for tests: one spire-server and one spire-agent on loopback in a fresh
 * temporary directory (join-token node attestation, unix workload attestor, sqlite, 1 s sync
 * intervals). The agent keeps its keys in memory; the server keeps its CA keys on disk in the
 * temp directory, so that a server restart keeps its CA (a memory key manager would mint a new
 * CA that running agents do not trust yet, and they could no longer sync). Several may run at once; each owns its ports and directory.
 */
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Daemon, freePort, run, runOk, tail, waitFor } from './proc.js';
import { spirePaths } from './tools.js';

export interface StartSpireOptions {
  /** Trust domain name; default `example.org`. */
  trustDomain?: string;
  /** Server CA lifetime (SPIRE duration string); default `24h`. */
  caTtl?: string;
  /** Default X509-SVID TTL; default `1h`. */
  defaultX509SvidTtl?: string;
  /** Default JWT-SVID TTL; default `5m`. */
  defaultJwtSvidTtl?: string;
  /** Federation: serve a bundle endpoint (https_spiffe) on this port; 0 picks one. */
  bundleEndpoint?: boolean;
  /** SPIRE log level; default `DEBUG`. */
  logLevel?: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  /** A name for the log folder kept on failure. */
  name?: string;
}

export interface EntryOptions {
  spiffeId: string;
  /** Default: `unix:uid:<this process's uid>`. */
  selectors?: readonly string[];
  /** Default: the rig's agent alias ID. */
  parentId?: string;
  x509SvidTtl?: number;
  jwtSvidTtl?: number;
  hint?: string;
  federatesWith?: readonly string[];
  dnsNames?: readonly string[];
  admin?: boolean;
}

export interface Entry {
  id: string;
  spiffeId: string;
  hint?: string;
}

export interface AuthorityIds {
  oldAuthorityId: string;
  newAuthorityId: string;
}

export interface SpireRig {
  readonly trustDomain: string;
  /** `spiffe://<td>` */
  readonly trustDomainId: string;
  /** Temp directory holding configs, data, sockets and logs. */
  readonly dir: string;
  /** Workload API socket path of the agent. */
  readonly workloadSocketPath: string;
  /** `unix:///…` address of the Workload API. */
  readonly workloadAddress: string;
  /** Admin API socket of the server. */
  readonly serverSocketPath: string;
  /** SPIFFE ID that entries use as parent (the join token alias of the agent). */
  readonly agentId: string;
  /** Port of the server's federation bundle endpoint, when enabled. */
  readonly bundleEndpointPort: number | undefined;
  readonly server: Daemon;
  readonly agent: Daemon;

  createEntry(opts: EntryOptions): Promise<Entry>;
  deleteEntry(id: string): Promise<void>;
  /** Creates an entry and waits until the agent serves an SVID for it to this process. */
  createEntryAndWait(opts: EntryOptions, timeoutMs?: number): Promise<Entry>;
  /** Waits until `spire-agent api fetch x509` (run as this process) includes `spiffeId`. */
  waitForX509Svid(spiffeId: string, timeoutMs?: number): Promise<void>;
  /** The trust bundle as PEM or as a SPIFFE bundle (JWKS) document. */
  bundle(format?: 'pem' | 'spiffe'): Promise<string>;
  /** Writes the agent's SVIDs with `spire-agent api fetch x509 -write` and returns the folder. */
  fetchX509ToDir(): Promise<string>;
  /** `spire-agent api fetch jwt`: the raw CLI output. */
  fetchJwtViaCli(audience: string, spiffeId?: string): Promise<string>;
  /** Prepares a new X.509 CA, activates it, taints then revokes the old one (steps selectable). */
  rotateX509Authority(opts?: { taint?: boolean; revoke?: boolean }): Promise<AuthorityIds>;
  /** Same for the JWT signing key. */
  rotateJwtAuthority(opts?: { taint?: boolean; revoke?: boolean }): Promise<AuthorityIds>;
  /** Federation: imports another rig's bundle and declares the relationship, then refreshes. */
  federateWith(other: SpireRig): Promise<void>;
  stopAgent(): Promise<void>;
  startAgent(): Promise<void>;
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  /** Runs a spire-server CLI command against this server's admin socket. */
  serverCli(args: readonly string[], input?: string): Promise<string>;
  /** The last lines of both logs, for failure messages. */
  logs(lines?: number): string;
  /** Copies configs and logs to `.rig-logs/<name>-<time>` and returns that path. */
  keepLogs(): string;
  /** Stops every process and removes the directory. */
  stop(): Promise<void>;
}

let instances = 0;

function serverConf(o: {
  td: string;
  port: number;
  dir: string;
  caTtl: string;
  x509Ttl: string;
  jwtTtl: string;
  logLevel: string;
  bundlePort: number | undefined;
}): string {
  const federation =
    o.bundlePort === undefined
      ? ''
      : `
  federation {
    bundle_endpoint {
      address = "127.0.0.1"
      port = ${o.bundlePort}
      refresh_hint = "1m"
      profile "https_spiffe" {}
    }
  }`;
  return `server {
  trust_domain = "${o.td}"
  bind_address = "127.0.0.1"
  bind_port = "${o.port}"
  socket_path = "${o.dir}/s/api.sock"
  data_dir = "${o.dir}/s/data"
  log_level = "${o.logLevel}"
  ca_ttl = "${o.caTtl}"
  default_x509_svid_ttl = "${o.x509Ttl}"
  default_jwt_svid_ttl = "${o.jwtTtl}"
  agent_ttl = "1h"
  ratelimit { attestation = false }
  experimental { cache_reload_interval = "1s" }${federation}
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${o.dir}/s/data/db.sqlite3"
    }
  }
  NodeAttestor "join_token" { plugin_data {} }
  KeyManager "disk" { plugin_data { keys_path = "${o.dir}/s/data/keys.json" } }
}
`;
}

function agentConf(o: { td: string; port: number; dir: string; logLevel: string }): string {
  return `agent {
  trust_domain = "${o.td}"
  server_address = "127.0.0.1"
  server_port = "${o.port}"
  socket_path = "${o.dir}/a/public/api.sock"
  data_dir = "${o.dir}/a/data"
  log_level = "${o.logLevel}"
  trust_bundle_path = "${o.dir}/bootstrap.pem"
  experimental { sync_interval = "1s" }
}
plugins {
  NodeAttestor "join_token" { plugin_data {} }
  KeyManager "memory" { plugin_data {} }
  WorkloadAttestor "unix" { plugin_data {} }
}
`;
}

interface EntryJson {
  results?: Array<{ status?: { code?: number; message?: string }; entry?: { id?: string } }>;
}

/** Starts a real spire-server and spire-agent and waits until both are healthy. */
export async function startSpire(options: StartSpireOptions = {}): Promise<SpireRig> {
  const tools = spirePaths();
  const td = options.trustDomain ?? 'example.org';
  const tdId = `spiffe://${td}`;
  // Unix socket paths must fit in 108 bytes: keep the base short.
  const base = '/tmp/tk-spire';
  mkdirSync(base, { recursive: true, mode: 0o755 });
  chmodSync(base, 0o755);
  const dir = mkdtempSync(join(base, `${instances++}-`));
  // Children started under other uids must be able to reach the Workload API socket.
  chmodSync(dir, 0o755);
  for (const d of ['s/data', 'a/data', 'a/public']) mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  chmodSync(join(dir, 'a'), 0o755);
  chmodSync(join(dir, 'a/public'), 0o755);

  const logLevel = options.logLevel ?? 'DEBUG';
  const serverPort = await freePort();
  const bundlePort = options.bundleEndpoint ? await freePort() : undefined;
  writeFileSync(
    join(dir, 'server.conf'),
    serverConf({
      td,
      port: serverPort,
      dir,
      caTtl: options.caTtl ?? '24h',
      x509Ttl: options.defaultX509SvidTtl ?? '1h',
      jwtTtl: options.defaultJwtSvidTtl ?? '5m',
      logLevel,
      bundlePort,
    }),
  );
  writeFileSync(join(dir, 'agent.conf'), agentConf({ td, port: serverPort, dir, logLevel }));

  const serverSocketPath = join(dir, 's/api.sock');
  const workloadSocketPath = join(dir, 'a/public/api.sock');
  const agentId = `${tdId}/agent/rig`;
  const server = new Daemon(
    tools.spireServer,
    ['run', '-config', join(dir, 'server.conf')],
    join(dir, 'server.log'),
  );
  let agent = new Daemon(
    tools.spireAgent,
    ['run', '-config', join(dir, 'agent.conf')],
    join(dir, 'agent.log'),
  );
  const ss = ['-socketPath', serverSocketPath];
  const as = ['-socketPath', workloadSocketPath];

  const serverCli = (args: readonly string[], input?: string): Promise<string> =>
    runOk(tools.spireServer, [...args, ...ss], input === undefined ? {} : { input });

  const waitServerHealthy = (): Promise<true> =>
    waitFor(
      'spire-server healthcheck',
      async () =>
        (await run(tools.spireServer, ['healthcheck', ...ss], { timeoutMs: 5000 })).code === 0
          ? true
          : undefined,
      { timeoutMs: 30_000, daemons: [server] },
    );

  const startAgentWithToken = async (): Promise<void> => {
    // The agent keeps its key in memory, so every start re-attests: give it the server's current
    // bundle (the CA may have rotated since the last start) and a fresh single-use join token.
    writeFileSync(join(dir, 'bootstrap.pem'), await rig.bundle('pem'));
    const tokenOut = await serverCli([
      'token',
      'generate',
      '-spiffeID',
      agentId,
      '-ttl',
      '600',
      '-output',
      'json',
    ]);
    const token = (JSON.parse(tokenOut) as { value: string }).value;
    agent = new Daemon(
      tools.spireAgent,
      ['run', '-config', join(dir, 'agent.conf'), '-joinToken', token],
      join(dir, 'agent.log'),
    );
    agent.start();
    await waitFor(
      'spire-agent healthcheck',
      async () =>
        (await run(tools.spireAgent, ['healthcheck', ...as], { timeoutMs: 5000 })).code === 0
          ? true
          : undefined,
      { timeoutMs: 30_000, daemons: [agent, server] },
    );
  };

  const fetchX509Json = async (): Promise<string> => {
    const r = await run(tools.spireAgent, ['api', 'fetch', 'x509', ...as, '-output', 'json'], {
      timeoutMs: 10_000,
    });
    return r.code === 0 ? r.stdout : '';
  };

  const rotate = async (
    kind: 'x509' | 'jwt',
    opts: { taint?: boolean; revoke?: boolean },
  ): Promise<AuthorityIds> => {
    const prepared = JSON.parse(await serverCli(['localauthority', kind, 'prepare', '-output', 'json'])) as {
      prepared_authority: { authority_id: string };
    };
    const newAuthorityId = prepared.prepared_authority.authority_id;
    await serverCli(['localauthority', kind, 'activate', '-authorityID', newAuthorityId, '-output', 'json']);
    const shown = JSON.parse(await serverCli(['localauthority', kind, 'show', '-output', 'json'])) as {
      old?: { authority_id?: string };
    };
    const oldAuthorityId = shown.old?.authority_id ?? '';
    if (opts.taint && oldAuthorityId) {
      await serverCli(['localauthority', kind, 'taint', '-authorityID', oldAuthorityId, '-output', 'json']);
    }
    if (opts.revoke && oldAuthorityId) {
      await serverCli(['localauthority', kind, 'revoke', '-authorityID', oldAuthorityId, '-output', 'json']);
    }
    return { oldAuthorityId, newAuthorityId };
  };

  const rig: SpireRig = {
    trustDomain: td,
    trustDomainId: tdId,
    dir,
    workloadSocketPath,
    workloadAddress: `unix://${workloadSocketPath}`,
    serverSocketPath,
    agentId,
    bundleEndpointPort: bundlePort,
    server,
    get agent() {
      return agent;
    },
    serverCli,

    async createEntry(o) {
      const uid = process.getuid?.() ?? 0;
      const args = [
        'entry',
        'create',
        '-parentID',
        o.parentId ?? agentId,
        '-spiffeID',
        o.spiffeId,
        '-output',
        'json',
      ];
      for (const s of o.selectors ?? [`unix:uid:${uid}`]) args.push('-selector', s);
      if (o.x509SvidTtl !== undefined) args.push('-x509SVIDTTL', String(o.x509SvidTtl));
      if (o.jwtSvidTtl !== undefined) args.push('-jwtSVIDTTL', String(o.jwtSvidTtl));
      if (o.hint !== undefined) args.push('-hint', o.hint);
      for (const f of o.federatesWith ?? []) args.push('-federatesWith', f);
      for (const d of o.dnsNames ?? []) args.push('-dns', d);
      if (o.admin) args.push('-admin');
      const out = JSON.parse(await serverCli(args)) as EntryJson;
      const result = out.results?.[0];
      const id = result?.entry?.id;
      if (!id)
        throw new Error(`spire-server entry create ${o.spiffeId}: ${JSON.stringify(result?.status ?? out)}`);
      return o.hint === undefined ? { id, spiffeId: o.spiffeId } : { id, spiffeId: o.spiffeId, hint: o.hint };
    },

    async deleteEntry(id) {
      await serverCli(['entry', 'delete', '-entryID', id]);
    },

    async waitForX509Svid(spiffeId, timeoutMs = 30_000) {
      await waitFor(
        `the agent to serve an X509-SVID for ${spiffeId}`,
        async () => ((await fetchX509Json()).includes(`"${spiffeId}"`) ? true : undefined),
        { timeoutMs, intervalMs: 250, daemons: [agent, server] },
      );
    },

    async createEntryAndWait(o, timeoutMs) {
      const entry = await rig.createEntry(o);
      await rig.waitForX509Svid(o.spiffeId, timeoutMs);
      return entry;
    },

    async bundle(format = 'pem') {
      return serverCli(['bundle', 'show', '-format', format]);
    },

    async fetchX509ToDir() {
      const out = mkdtempSync(join(dir, 'fetch-'));
      await runOk(tools.spireAgent, ['api', 'fetch', 'x509', ...as, '-write', out], { timeoutMs: 15_000 });
      return out;
    },

    async fetchJwtViaCli(audience, spiffeId) {
      const args = ['api', 'fetch', 'jwt', ...as, '-audience', audience];
      if (spiffeId) args.push('-spiffeID', spiffeId);
      return runOk(tools.spireAgent, args, { timeoutMs: 15_000 });
    },

    rotateX509Authority: (opts = {}) => rotate('x509', opts),
    rotateJwtAuthority: (opts = {}) => rotate('jwt', opts),

    async federateWith(other) {
      if (other.bundleEndpointPort === undefined)
        throw new Error(`${other.trustDomain} serves no bundle endpoint`);
      const bundlePath = join(dir, `federated-${other.trustDomain}.json`);
      writeFileSync(bundlePath, await other.bundle('spiffe'));
      await serverCli([
        'federation',
        'create',
        '-trustDomain',
        other.trustDomain,
        '-bundleEndpointURL',
        `https://127.0.0.1:${other.bundleEndpointPort}`,
        '-bundleEndpointProfile',
        'https_spiffe',
        '-endpointSpiffeID',
        `${other.trustDomainId}/spire/server`,
        '-trustDomainBundlePath',
        bundlePath,
        '-trustDomainBundleFormat',
        'spiffe',
      ]);
    },

    async stopAgent() {
      await agent.stop();
    },
    async startAgent() {
      await startAgentWithToken();
    },
    async stopServer() {
      await server.stop();
    },
    async startServer() {
      server.start();
      await waitServerHealthy();
    },

    logs(lines = 40) {
      return `--- spire-server (${server.logPath}) ---\n${tail(server.logPath, lines)}\n--- spire-agent (${agent.logPath}) ---\n${tail(agent.logPath, lines)}`;
    },

    keepLogs() {
      const dest = resolve(
        '.rig-logs',
        `${options.name ?? td}-${new Date().toISOString().replace(/[:.]/g, '-')}`,
      );
      mkdirSync(dest, { recursive: true });
      for (const f of ['server.log', 'agent.log', 'server.conf', 'agent.conf']) {
        try {
          cpSync(join(dir, f), join(dest, f));
        } catch {
          // a file that was never written is simply absent
        }
      }
      return dest;
    },

    async stop() {
      await Promise.all([agent.stop(), server.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    server.start();
    await waitServerHealthy();
    await startAgentWithToken();
  } catch (err) {
    const kept = rig.keepLogs();
    await Promise.all([agent.stop(), server.stop()]);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`startSpire(${td}) failed; logs kept in ${kept}: ${(err as Error).message}`);
  }
  return rig;
}
