/**
 * What a terminal donor shows on stderr (`infermesh donate`, serve's local donors): a progress
 * bar while its layers download, then one status line, rewritten in place, while it serves. Off
 * a terminal (a log, a test), a line per change of status and a serving line at most every
 * LOG_EVERY_MS, so a log stays readable.
 */
import cliProgress from 'cli-progress';
import type { DonorHooks } from '../web/donor/donor.ts';
import type { DonorState } from '../web/donor/view.ts';

const LOG_EVERY_MS = 60_000;

export interface DonorStatusDeps {
  stream?: NodeJS.WriteStream;
  /** a progress bar and one line rewritten in place (default: when the stream is a terminal); serve's log keeps lines */
  inPlace?: boolean;
  now?: () => number;
}

/** Hooks that show the donor's state; `label` prefixes every line (e.g. "donor 1"). */
export function createDonorStatus(label: string, deps: DonorStatusDeps = {}): DonorHooks & { state(): DonorState; stop(): void } {
  const stream = deps.stream ?? process.stderr;
  const now = deps.now ?? Date.now;
  const tty = deps.inPlace ?? stream.isTTY === true;
  const state: DonorState = { status: 'connecting', requestsServed: 0, tokensServed: 0, tokensPerSecond: 0, peers: 0 };
  let bar: cliProgress.SingleBar | undefined;
  let lastStatus: DonorState['status'] | undefined;
  let lastLogAt = -Infinity;
  let lastLine = '';

  const write = (line: string) => stream.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
  const endLine = () => {
    if (tty && lastLine) stream.write('\n');
    lastLine = '';
  };

  function show(): void {
    if (state.status === 'downloading' && state.download && tty) {
      const { total, verified, resumed, bytes } = state.download;
      const payload = { mb: (bytes / 2 ** 20).toFixed(1), peers: state.download.fromPeers };
      if (!bar) {
        endLine();
        bar = new cliProgress.SingleBar({ stream, format: `${label}: downloading layers ${describeLayers(state)} [{bar}] {value}/{total} pieces | {mb} MiB | {peers} from peers`, hideCursor: true }, cliProgress.Presets.shades_classic);
        bar.start(total, verified + resumed, payload);
      } else bar.update(verified + resumed, payload);
      return;
    }
    if (bar) {
      bar.stop();
      bar = undefined;
    }
    const line = `${label}: ${statusLine(state)}`;
    const changed = state.status !== lastStatus;
    lastStatus = state.status;
    if (tty) {
      if (line !== lastLine) write(line);
      lastLine = line;
    } else if (changed || (state.status === 'serving' && now() - lastLogAt >= LOG_EVERY_MS && line !== lastLine)) {
      write(line);
      lastLine = line;
      lastLogAt = now();
    }
  }

  return {
    update(patch) {
      Object.assign(state, patch);
      show();
    },
    throughput() {},
    error(message) {
      bar?.stop();
      bar = undefined;
      endLine();
      stream.write(`${label}: error: ${message}\n`);
    },
    state: () => ({ ...state }),
    stop() {
      bar?.stop();
      endLine();
    },
  };
}

const describeLayers = (s: DonorState) => (s.layers ? `${s.layers.start}..${s.layers.end - 1}${s.nLayers ? ` of ${s.nLayers}` : ''}` : '?');

/** The donor's state in one line, as its page shows it. */
export function statusLine(s: DonorState): string {
  switch (s.status) {
    case 'connecting':
      return 'joining the grid';
    case 'benchmarking':
      return 'measuring this machine';
    case 'downloading':
      return `downloading layers ${describeLayers(s)}${s.download ? ` (${s.download.verified + s.download.resumed}/${s.download.total} pieces)` : ''}`;
    case 'loading':
      return `loading layers ${describeLayers(s)}`;
    case 'serving': {
      const threads = s.threads ? `, ${s.threads.threads} thread${s.threads.threads === 1 ? '' : 's'}` : '';
      const device = s.device ? ` on ${s.device.label}${threads}, ${s.device.msPerLayer.toFixed(2)} ms/layer` : '';
      const trust = s.trust?.committed ? ` · ${s.trust.committed} committed` : '';
      return `serving layers ${describeLayers(s)}${device} · ${s.requestsServed} requests · ${s.tokensServed} tokens · ${s.tokensPerSecond.toFixed(1)} tok/s · ${s.peers} peers${trust}`;
    }
    case 'error':
      return 'stopped by an error';
  }
}
