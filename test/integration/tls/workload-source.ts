/**
 * The SDK's own X509Source (a real Workload API watch) choosing one SVID by hint, handed to
 * the TLS helpers as is, plus a record of the serials it served.
 */
import type { X509SvidSource } from '../../../src/tls/index.js';
import { X509Source } from '../../../src/workload/index.js';

export interface HintSource {
  /** The X509Source, passed to the TLS helpers unchanged. */
  readonly source: X509Source;
  /** Serial numbers of every SVID the source selected, in order. */
  readonly serials: string[];
  close(): Promise<void>;
}

export async function workloadSource(address: string, hint: string): Promise<HintSource> {
  const source = await X509Source.create({ address, select: { hint }, initialSyncTimeoutMs: 30_000 });
  // X509Source satisfies the helpers' structural interface without an adapter
  const asTlsSource: X509SvidSource = source;
  void asTlsSource;
  const serials = [source.getX509Svid().leaf.serialNumber];
  source.on('update', () => {
    try {
      const serial = source.getX509Svid().leaf.serialNumber;
      if (serials.at(-1) !== serial) serials.push(serial);
    } catch {
      // no identity at this instant: nothing served
    }
  });
  return { source, serials, close: () => source.close() };
}
