/**
 * Shared types of the Workload API client and sources, and SVID selection.
 */
import type { BundleSet } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import { SpiffeId } from '../spiffeid/index.js';
import type { JwtSvid, X509Svid } from '../svid/index.js';

/**
 * Everything FetchX509SVID carries at one moment: the caller's X509-SVIDs (the first is the
 * default identity), the X.509 bundles of their trust domains and of federated trust domains, and
 * the CRLs. Immutable.
 *
 * `svids` is empty only in the state a watch reports after a redaction (the agent said
 * `PermissionDenied`); a context returned by a fetch always holds at least one SVID.
 */
export interface X509Context {
  /** The SVIDs, in the agent's order; SVIDs whose hint repeats an earlier one are dropped. */
  readonly svids: readonly X509Svid[];
  /** X.509 bundles: each SVID's own trust domain plus the federated ones. */
  readonly bundles: BundleSet;
  /** DER-encoded CRLs, as the agent sent them (not interpreted). */
  readonly crls: readonly Uint8Array[];
}

/**
 * How to choose one SVID among several:
 * - `{ hint }`: the SVID with this operator-chosen hint;
 * - `{ spiffeId }`: the first SVID with this SPIFFE ID;
 * - a function: given every SVID (in the agent's order), return the one to use or `undefined`.
 *
 * Without a selector, the first SVID is used (the default identity, Workload API §8).
 *
 * @typeParam S - `X509Svid` or `JwtSvid`.
 */
export type SvidSelector<S> = HintSelector | SpiffeIdSelector | SvidPicker<S>;

/** Selects the SVID with this hint. */
export interface HintSelector {
  /** The operator-chosen hint (exact match). */
  readonly hint: string;
}

/** Selects the first SVID with this SPIFFE ID. */
export interface SpiffeIdSelector {
  /** The SPIFFE ID, as a string or a parsed `SpiffeId`. */
  readonly spiffeId: string | SpiffeId;
}

/** Picks one SVID among all of them (in the agent's order); `undefined` means none fits. */
export type SvidPicker<S> = (svids: readonly S[]) => S | undefined;

/** What selection needs of an SVID. */
export interface SelectableSvid {
  /** The SVID's SPIFFE ID. */
  readonly spiffeId: SpiffeId;
  /** The SVID's hint, if any. */
  readonly hint?: string | undefined;
}

/** A selector of X509-SVIDs. */
export type X509SvidSelector = SvidSelector<X509Svid>;
/** A selector of JWT-SVIDs. */
export type JwtSvidSelector = SvidSelector<JwtSvid>;

/** Options every call accepts. */
export interface CallOptions {
  /** Aborts the call: it rejects with `workload-aborted` (the reason in `cause`). */
  signal?: AbortSignal | undefined;
  /** Deadline of this call in ms; default the client's `timeoutMs`. */
  timeoutMs?: number | undefined;
}

function describeSelector<S>(selector: SvidSelector<S>): string {
  if (typeof selector === 'function') return 'the picker function';
  if ('hint' in selector) return `hint ${JSON.stringify(selector.hint)}`;
  return `SPIFFE ID ${String(selector.spiffeId)}`;
}

/**
 * Picks one SVID: the first one without a selector, else the one the selector names.
 *
 * @param svids - candidates, in the agent's order.
 * @param selector - hint, SPIFFE ID or picker; default the first SVID.
 * @throws IdentityError `workload-svid-not-found` when nothing matches (or the list is empty),
 *   `workload-invalid-option` for a malformed selector or a picker returning a foreign object.
 */
export function selectSvid<S extends SelectableSvid>(
  svids: readonly S[],
  selector?: SvidSelector<S> | undefined,
): S {
  if (selector === undefined) {
    const first = svids[0];
    if (first === undefined) throw new IdentityError('workload-svid-not-found', 'no SVID is available');
    return first;
  }
  let found: S | undefined;
  if (typeof selector === 'function') {
    let picked: S | undefined;
    try {
      picked = selector(svids);
    } catch (err) {
      throw new IdentityError(
        'workload-invalid-option',
        `the SVID picker threw: ${(err as Error)?.message ?? String(err)}`,
        {
          cause: err,
        },
      );
    }
    if (picked !== undefined && !svids.includes(picked)) {
      throw new IdentityError(
        'workload-invalid-option',
        'the SVID picker must return one of the SVIDs it was given',
      );
    }
    found = picked;
  } else if (
    typeof selector === 'object' &&
    selector !== null &&
    'hint' in selector &&
    typeof selector.hint === 'string'
  ) {
    found = svids.find((s) => s.hint === selector.hint);
  } else if (typeof selector === 'object' && selector !== null && 'spiffeId' in selector) {
    const id =
      selector.spiffeId instanceof SpiffeId ? selector.spiffeId : SpiffeId.parse(String(selector.spiffeId));
    found = svids.find((s) => s.spiffeId.equals(id));
  } else {
    throw new IdentityError(
      'workload-invalid-option',
      'an SVID selector is { hint }, { spiffeId } or a function',
    );
  }
  if (found === undefined) {
    const available = svids.map((s) =>
      s.hint ? `${s.spiffeId} (hint ${JSON.stringify(s.hint)})` : String(s.spiffeId),
    );
    throw new IdentityError(
      'workload-svid-not-found',
      `no SVID matches ${describeSelector(selector)}; available: ${available.join(', ') || 'none'}`,
      { details: { available } },
    );
  }
  return found;
}
