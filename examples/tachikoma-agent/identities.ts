/**
 * The identities of the example, by the Tachikoma naming scheme. The four entries (SPIRE) or
 * identities (dev server) are all served to this one process; each service picks its own SVID by
 * SPIFFE ID. Hints (`registry-backend`, `teg-core`, `agent`, `federation-hub`) are optional.
 */
import { agentIdFromEmail, type SpiffeId, serviceId, TrustDomain } from '../../src/spiffeid/index.js';

/** The demo agent's e-mail (its SPIFFE ID is `spiffe://<td>/agent/alice_at_example_dot_com`). */
export const AGENT_EMAIL = 'alice@example.com';
/** Another agent: alice may not read its record. */
export const OTHER_AGENT_EMAIL = 'erin@example.com';

/** The SPIFFE IDs of the example in one trust domain. */
export interface ExampleIds {
  readonly trustDomain: TrustDomain;
  /** `spiffe://<td>/service/registry-backend`: serves agents, calls TEG core for them. */
  readonly registry: SpiffeId;
  /** `spiffe://<td>/service/teg-core`: validates the agent's JWT-SVID and asks the policies. */
  readonly tegCore: SpiffeId;
  /** `spiffe://<td>/agent/alice_at_example_dot_com`: the agent. */
  readonly agent: SpiffeId;
  /** `spiffe://<td>/agent/erin_at_example_dot_com`: another agent. */
  readonly otherAgent: SpiffeId;
  /** `spiffe://<td>/service/federation-hub`: a real service, but not allowed to call TEG core. */
  readonly outsider: SpiffeId;
}

/** The example's IDs in `td`. */
export function exampleIds(td: string | TrustDomain): ExampleIds {
  const trustDomain = td instanceof TrustDomain ? td : TrustDomain.parse(td);
  return {
    trustDomain,
    registry: serviceId(trustDomain, 'registry-backend'),
    tegCore: serviceId(trustDomain, 'teg-core'),
    agent: agentIdFromEmail(trustDomain, AGENT_EMAIL),
    otherAgent: agentIdFromEmail(trustDomain, OTHER_AGENT_EMAIL),
    outsider: serviceId(trustDomain, 'federation-hub'),
  };
}

/** The identities the example needs from the Workload API, with their hints. */
export function requiredIdentities(ids: ExampleIds): readonly { spiffeId: string; hint: string }[] {
  return [
    { spiffeId: ids.registry.toString(), hint: 'registry-backend' },
    { spiffeId: ids.tegCore.toString(), hint: 'teg-core' },
    { spiffeId: ids.agent.toString(), hint: 'agent' },
    { spiffeId: ids.outsider.toString(), hint: 'federation-hub' },
  ];
}
