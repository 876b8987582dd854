/**
 * The grid server under test as a child process, `infermesh serve` exactly as an operator runs
 * it (settlement on, so it starts its own anvil): started, watched, restarted after a crash and
 * stopped without leaving anything behind. The fuzz runner (run-fuzz.ts), the fuzz test and the
 * newcomer's `npm start` test (e2e/npm-start.test.ts) use it; a crash must not take the harness
 * down, so the server never runs in-process.
 *
 * The child leads its own process group: the anvil it spawns is in that group, and a group
 * kill after every exit takes anvil too, even when the server died by a signal that gave it no
 * chance to stop anvil itself.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { InfermeshError } from '../../shared/errors.ts';
import { withDeadline } from './deadline.ts';

/** The server exited or went silent before it printed its URL and relay address. */
export class ServeStartError extends InfermeshError {
  override name = 'ServeStartError';
}

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/infermesh.js', import.meta.url));
/** anvil, the contract deployment and the relay: about 3.5 s on 2 cores; a loaded machine needs more. */
const DEFAULT_START_TIMEOUT_MS = 60_000;
/** SIGTERM lets the server stop anvil and close its stores; past this it is killed. */
const STOP_GRACE_MS = 15_000;
/** VmHWM is a high-water mark, so sampling it often enough catches the peak of a live process. */
const RSS_SAMPLE_MS = 200;
const STDERR_TAIL_CHARS = 8_000;

export interface ServeProcessOptions {
  /** the model package folder (`--model`); none: the server's default model */
  modelDir?: string;
  /** the donors the server runs in its own process (`--donors`; default: the server's default) */
  donors?: number;
  /** the address it listens on (default 127.0.0.1) */
  host?: string;
  /** more flags, e.g. ['--turn', …] */
  args?: string[];
  /** runs it inside this network namespace (testkit/nat/nat-lab.ts) */
  netns?: string;
  /** the state folder (`--data`): grid store, ledger, anvil's state; kept across restarts */
  dataDir: string;
  startTimeoutMs?: number;
  /** flags for the server's node, e.g. ['--max-old-space-size=256'] */
  nodeArgs?: string[];
}

export interface ServeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** ms since the epoch */
  at: number;
  pid: number;
  /** the last lines the server wrote to stderr (a crash's stack trace) */
  stderrTail: string;
}

export interface ServeProcess {
  /** the HTTP origin with a trailing slash, e.g. http://127.0.0.1:43423/ (changes on restart) */
  readonly url: string;
  readonly port: number;
  /** the relay's WebSocket multiaddr with its /p2p/ id (changes on restart: a new key) */
  readonly relayAddr: string;
  readonly pid: number;
  readonly alive: boolean;
  /** exits the harness did not ask for, oldest first */
  readonly crashes: readonly ServeExit[];
  /** incarnations started, the first included */
  readonly starts: number;
  /** the server process's peak resident memory (VmHWM) over every incarnation, in MiB */
  peakRssMiB(): number;
  /** its resident memory now (VmRSS), in MiB; 0 when it is not running */
  rssMiB(): number;
  stderrTail(): string;
  /** Called on every unexpected exit; returns an unsubscribe. */
  onCrash(listener: (exit: ServeExit) => void): () => void;
  /** Starts a new incarnation after a crash (same data folder, new ports). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

interface Incarnation {
  child: ChildProcess;
  pid: number;
  url: string;
  relayAddr: string;
  exited: Promise<void>;
  alive: boolean;
}

const killGroup = (pid: number, signal: NodeJS.Signals) => {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
};

/** A memory figure from /proc/<pid>/status in KiB (VmHWM, the peak; VmRSS, now), or 0 when the process is gone (or this is not Linux). */
function statusKiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
const highWaterKiB = (pid: number) => statusKiB(pid, 'VmHWM');

export async function startServeProcess(options: ServeProcessOptions): Promise<ServeProcess> {
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const crashes: ServeExit[] = [];
  const listeners = new Set<(exit: ServeExit) => void>();
  let stderr = '';
  let peakKiB = 0;
  let starts = 0;
  let stopping = false;
  let current: Incarnation | null = null;
  /** One restart at a time: every worker that saw the crash waits on the same one. */
  let restarting: Promise<void> | null = null;
  const groups = new Set<number>();
  // A harness that exits without stop() (an assertion threw in a hook) still takes the server along.
  const killAllOnExit = () => groups.forEach((pid) => killGroup(pid, 'SIGKILL'));
  process.on('exit', killAllOnExit);
  // So does one stopped by a signal, which skips 'exit': kill, then let the signal do what it would have.
  const onSignal = (signal: NodeJS.Signals) => {
    killAllOnExit();
    unhookSignals();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  SIGNALS.forEach((s) => process.on(s, onSignal));
  const unhookSignals = () => SIGNALS.forEach((s) => process.removeListener(s, onSignal));

  async function launch(): Promise<void> {
    const args = [
      ...(options.nodeArgs ?? []),
      CLI,
      'serve',
      ...(options.modelDir ? ['--model', options.modelDir] : []),
      ...(options.donors !== undefined ? ['--donors', String(options.donors)] : []),
      '--data',
      options.dataDir,
      '--host',
      options.host ?? '127.0.0.1',
      '--port',
      '0',
      ...(options.args ?? []),
    ];
    // `ip netns exec` execs the server in place: the same pid, and the process group it leads.
    const [command, argv] = options.netns ? ['ip', ['netns', 'exec', options.netns, process.execPath, ...args]] : [process.execPath, args];
    const child = spawn(command, argv, { cwd: REPO_ROOT, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    if (child.pid === undefined) throw new ServeStartError(`could not spawn ${process.execPath} ${args.join(' ')}`);
    const pid = child.pid;
    groups.add(pid);
    starts++;
    let url = '';
    let relayAddr = '';
    let ready: () => void = () => {};
    let failed: (err: Error) => void = () => {};
    const started = new Promise<void>((done, fail) => {
      ready = done;
      failed = fail;
    });
    child.stderr!.setEncoding('utf8');
    let pending = '';
    child.stderr!.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS);
      if (url && relayAddr) return;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const web = /open (http:\/\/\S+\/)donor\//.exec(line);
        if (web) url = web[1];
        const relay = /relay:\s+(.*)$/.exec(line);
        if (relay) relayAddr = relay[1].split(/\s+/).find((a) => a.includes('/ws/') && a.includes('/p2p/')) ?? '';
      }
      if (url && relayAddr) ready();
    });
    const sampler = setInterval(() => {
      peakKiB = Math.max(peakKiB, highWaterKiB(pid));
    }, RSS_SAMPLE_MS);
    sampler.unref();
    const incarnation: Incarnation = { child, pid, url: '', relayAddr: '', alive: true, exited: Promise.resolve() };
    incarnation.exited = new Promise<void>((done) => {
      child.once('exit', (code, signal) => {
        clearInterval(sampler);
        incarnation.alive = false;
        // anvil (and anything else the server spawned) goes with it.
        killGroup(pid, 'SIGKILL');
        groups.delete(pid);
        failed(new ServeStartError(`the server exited (code ${code}, signal ${signal}) before it was ready:\n${stderr}`));
        if (!stopping && url && relayAddr) {
          const exit: ServeExit = { code, signal, at: Date.now(), pid, stderrTail: stderr };
          crashes.push(exit);
          listeners.forEach((l) => l(exit));
        }
        done();
      });
    });
    try {
      await withDeadline(started, startTimeoutMs, 'the grid server starting');
    } catch (err) {
      killGroup(pid, 'SIGKILL');
      await withDeadline(incarnation.exited, 5_000, 'the grid server exiting').catch(() => undefined);
      throw err instanceof ServeStartError ? err : new ServeStartError(`${(err as Error).message}; its stderr:\n${stderr}`, { cause: err });
    }
    incarnation.url = url;
    incarnation.relayAddr = relayAddr;
    current = incarnation;
  }

  async function stopCurrent(): Promise<void> {
    const inc = current;
    if (!inc) return;
    peakKiB = Math.max(peakKiB, highWaterKiB(inc.pid));
    if (inc.alive) {
      inc.child.kill('SIGTERM');
      try {
        await withDeadline(inc.exited, STOP_GRACE_MS, 'the grid server stopping');
      } catch {
        killGroup(inc.pid, 'SIGKILL');
        await withDeadline(inc.exited, 5_000, 'the grid server dying').catch(() => undefined);
      }
    }
    killGroup(inc.pid, 'SIGKILL');
  }

  await launch();
  const live = () => {
    if (!current) throw new ServeStartError('the grid server is not running');
    return current;
  };
  return {
    get url() {
      return live().url;
    },
    get port() {
      return Number(new URL(live().url).port);
    },
    get relayAddr() {
      return live().relayAddr;
    },
    get pid() {
      return live().pid;
    },
    get alive() {
      return current?.alive ?? false;
    },
    crashes,
    get starts() {
      return starts;
    },
    peakRssMiB: () => {
      if (current?.alive) peakKiB = Math.max(peakKiB, highWaterKiB(current.pid));
      return +(peakKiB / 1024).toFixed(1);
    },
    rssMiB: () => (current?.alive ? +(statusKiB(current.pid, 'VmRSS') / 1024).toFixed(1) : 0),
    stderrTail: () => stderr,
    onCrash(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async restart() {
      if (stopping) throw new ServeStartError('the grid server was stopped');
      if (current?.alive) return;
      await (restarting ??= launch().finally(() => {
        restarting = null;
      }));
    },
    async stop() {
      stopping = true;
      await stopCurrent();
      process.removeListener('exit', killAllOnExit);
      unhookSignals();
    },
  };
}
