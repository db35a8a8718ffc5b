/**
 * Watching a bundle file for changes.
 *
 * The parent directory is watched, not the file: editors and Kubernetes replace files by rename
 * or by swapping a `..data` symlink, which a watch on the old file would never see. Events are
 * debounced, and a slow stat-based poll catches what `fs.watch` misses (network filesystems,
 * events lost under load). The watcher only says "something may have changed"; the engine
 * compares content hashes and decides.
 */
import { type FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

/** Options of {@link FileWatcher}. */
export interface FileWatcherOptions {
  /** Quiet time after the last event before checking, in ms. */
  readonly debounceMs: number;
  /** Interval of the fallback stat poll in ms; 0 disables it. */
  readonly pollIntervalMs: number;
}

/** Calls `onChange` (debounced) whenever the watched path may have changed. */
export class FileWatcher {
  readonly #path: string;
  readonly #onChange: () => void;
  readonly #onError: (err: Error) => void;
  readonly #opts: FileWatcherOptions;
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #lastStat = '';
  #closed = false;

  constructor(path: string, opts: FileWatcherOptions, onChange: () => void, onError: (err: Error) => void) {
    this.#path = path;
    this.#opts = opts;
    this.#onChange = onChange;
    this.#onError = onError;
  }

  /** Starts watching the parent directory and the fallback poll. */
  async start(): Promise<void> {
    this.#lastStat = await this.#statSignature();
    this.#watcher = watch(dirname(this.#path), { persistent: false }, () => this.#schedule());
    this.#watcher.on('error', (err) => {
      // The directory went away or the watch broke: keep the poll running.
      this.#watcher?.close();
      this.#watcher = undefined;
      this.#onError(err);
    });
    if (this.#opts.pollIntervalMs > 0) {
      this.#poll = setInterval(() => {
        void this.#pollOnce();
      }, this.#opts.pollIntervalMs);
      this.#poll.unref();
    }
  }

  /** The file name inside the watched directory. */
  get fileName(): string {
    return basename(this.#path);
  }

  async #statSignature(): Promise<string> {
    try {
      const s = await stat(this.#path);
      return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
    } catch {
      return 'missing';
    }
  }

  async #pollOnce(): Promise<void> {
    const sig = await this.#statSignature();
    if (this.#closed || sig === this.#lastStat) return;
    this.#lastStat = sig;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      if (this.#closed) return;
      void this.#statSignature().then((sig) => {
        this.#lastStat = sig;
        if (!this.#closed) this.#onChange();
      });
    }, this.#opts.debounceMs);
  }

  /** Stops watching; idempotent. */
  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
    if (this.#poll !== undefined) clearInterval(this.#poll);
    this.#debounce = undefined;
    this.#poll = undefined;
  }
}
