/**
 * `npm run bench -- <suite> [--json]`: the project's measurements, printed as JSON (--json) or
 * as a short table. Suites: compile (time and bytes per dtype), local (decode speed through
 * K in-process stages next to one whole-model graph, same run, same machine), engine (the shard
 * engine in Chromium and Node next to the whole-model graph on the same execution provider), grid
 * (decode speed through 1, 2 and 4 Chromium donor tabs of a grid on this machine), trust
 * (commitments on vs off, replay cost, proof bytes, detection of each stage fault), fuzz (the
 * grid server under malformed HTTP and libp2p input: errors, crashes, stuck streams, peak memory),
 * decoders (every decoder of network input fuzzed on its own: refusals by name, crashes),
 * churn (generations whose route loses a stage to a closed tab, a killed browser, a dropped or
 * throttled link or a frozen tab: identical text, tokens lost and repeated, recovery time),
 * load (the server under hundreds of concurrent HTTP clients: throughput, latency, backpressure),
 * sdk (the SDK package's install as an app gets it, the client's download, its two Node runtimes),
 * campaign (signed campaign results the server checks and stores per second; a campaign's first result on its dashboard, with a real tab).
 */
import { Command, type OptionValues } from 'commander';
import { compileBench } from './compile-bench.ts';
import { localBench } from './local-bench.ts';
import { engineBench } from './engine-bench.ts';
import { gridBench } from './grid-bench.ts';
import { trustBench } from './trust-bench.ts';
import { decodersBench } from './decoders-bench.ts';
import { fuzzBench } from './fuzz-bench.ts';
import { churnBench } from './churn-bench.ts';
import { loadBench } from './load-bench.ts';
import { sdkBench } from './sdk-bench.ts';
import { campaignBench } from './campaign-bench.ts';
import type { Family } from '../testkit/fuzz/fuzz-cases.ts';
import { CHURN_FAULTS, STAGE_POSITIONS } from '../testkit/churn/faults.ts';

/** A comma-separated option's items, each one of `allowed`. */
function listOf<T extends string>(value: string, allowed: readonly T[], option: string): T[] {
  const items = value.split(',').map((x) => x.trim());
  const unknown = items.filter((x) => !allowed.includes(x as T));
  if (unknown.length > 0 || items.length === 0) throw new Error(`${option}: ${unknown.join(', ') || 'nothing'} is not one of ${allowed.join(', ')}`);
  return items as T[];
}

function print(result: unknown, json: boolean) {
  process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : `${formatTable(result)}\n`);
}

function formatTable(result: unknown, indent = ''): string {
  if (Array.isArray(result)) return result.map((r) => `${indent}- ${formatTable(r, `${indent}  `).trimStart()}`).join('\n');
  if (result && typeof result === 'object') {
    return Object.entries(result)
      .map(([k, v]) => (v && typeof v === 'object' ? `${indent}${k}:\n${formatTable(v, `${indent}  `)}` : `${indent}${k}: ${v}`))
      .join('\n');
  }
  return `${indent}${result}`;
}

const program = new Command('bench');

/** A suite's command: every suite prints its result as JSON with --json, as a table without. */
const suite = (name: string, description: string) => program.command(name).description(description).option('--json', 'print JSON');

/**
 * The action that measures and prints. A suite that `lingers` started servers, tabs or WebRTC
 * nodes: everything it started is closed, but a library can keep a handle open after (seen once
 * after the WebRTC nodes stopped), so the process exits 5 s after printing instead of waiting.
 */
function printed(measure: (opts: OptionValues) => Promise<unknown>, { lingers = false } = {}) {
  return async (opts: OptionValues) => {
    print(await measure(opts), !!opts.json);
    if (lingers) setTimeout(() => process.exit(), 5_000).unref();
  };
}

suite('compile', 'compile time, peak memory and package bytes per dtype (stories260K and synthetic:110m)')
  .option('--models <list>', 'comma-separated checkpoints', 'stories260K,synthetic:110m')
  .action(printed((opts) => compileBench({ models: opts.models.split(',') })));
suite('local', 'decode tokens/s of synthetic:110m through 1, 2, 4 stages next to the whole-model graph')
  .option('--preset <name>', 'synthetic preset', '110m')
  .option('--tokens <n>', 'decode steps per measurement', '64')
  // 11 rounds left the median ratio ±2% from run to run on 2 vCPUs; 21 narrow that.
  .option('--rounds <n>', 'interleaved rounds (median reported)', '21')
  .option('--threads <n>', 'onnxruntime intra-op threads per session (default: onnxruntime)')
  .action(printed((opts) => localBench({ preset: opts.preset, tokens: Number(opts.tokens), rounds: Number(opts.rounds), threads: opts.threads ? Number(opts.threads) : undefined })));

suite('engine', 'shard engine decode speed next to the whole-model graph: 110m on WASM in Chromium and in Node, tiny on WebGPU')
  .option('--tokens <n>', 'decode steps per measurement', '32')
  .option('--rounds <n>', 'interleaved rounds (median reported)', '5')
  .action(printed((opts) => engineBench({ tokens: Number(opts.tokens), rounds: Number(opts.rounds) })));

suite('grid', 'decode tokens/s of synthetic:110m q4 through a grid of 1, 2 and 4 Chromium donor tabs (server, tabs and client as `infermesh demo` runs them)')
  .option('--tokens <n>', 'greedy completion tokens per generation', '64')
  .option('--rounds <n>', 'rounds per grid (median reported)', '3')
  .option('--schedule <kind>', 'interleaved (all three grids up, round by round) or sequential (one grid at a time); default: interleaved on 8+ cores')
  .action(
    printed(
      async (opts) => {
        if (opts.schedule && !['interleaved', 'sequential'].includes(opts.schedule)) throw new Error(`--schedule must be interleaved or sequential, not ${opts.schedule}`);
        return gridBench({ tokens: Number(opts.tokens), rounds: Number(opts.rounds), schedule: opts.schedule });
      },
      { lingers: true },
    ),
  );
suite('trust', 'tokens/s with commitments on and off (synthetic:110m q4, Node stage peers over WebRTC), replay cost, proof bytes per token, and detection of each stage fault')
  .option('--tokens <n>', 'greedy completion tokens per generation', '64')
  .option('--rounds <n>', 'interleaved on/off rounds (median of per-round ratios reported)', '15')
  .action(printed((opts) => trustBench({ tokens: Number(opts.tokens), rounds: Number(opts.rounds) }), { lingers: true }));

suite('fuzz', 'the grid server (a child `infermesh serve`) under fuzzed HTTP requests and coordinator and trust messages: server errors, crashes, stuck streams, leaks, peak RSS')
  .option('--cases <n>', 'fuzz cases', '10000')
  .option('--concurrency <n>', 'cases at once', '16')
  .option('--seed <n>', 'fast-check seed (default: random, printed)')
  .option('--families <list>', 'comma-separated: http,coordinator,trust,relay (default: all, 65/20/10/5)')
  .option('--case <i>', 'run only case i of the run (with the same --seed)')
  .option('--progress', 'progress on stderr')
  .option('--server-heap-mib <n>', "cap the server's V8 heap (--max-old-space-size): bounded state lives under a small cap, a leak crashes")
  .action(
    printed(
      async (opts) => {
        // Ctrl-C or a kill: exiting runs the harness's exit hooks, which kill the server and its anvil and remove the temp folders.
        process.once('SIGINT', () => process.exit(130));
        process.once('SIGTERM', () => process.exit(143));
        const seed = opts.seed !== undefined ? Number(opts.seed) : Math.floor(Math.random() * 2 ** 31);
        const cases = Number(opts.cases);
        const concurrency = Number(opts.concurrency);
        const serverHeapMiB = opts.serverHeapMib !== undefined ? Number(opts.serverHeapMib) : undefined;
        if (![seed, cases, concurrency].every(Number.isSafeInteger) || cases < 1 || concurrency < 1) throw new Error('--cases, --concurrency and --seed must be integers (cases and concurrency ≥ 1)');
        if (serverHeapMiB !== undefined && !(Number.isSafeInteger(serverHeapMiB) && serverHeapMiB >= 64)) throw new Error('--server-heap-mib must be an integer ≥ 64');
        return fuzzBench({
          cases,
          concurrency,
          seed,
          families: opts.families?.split(',') as Family[] | undefined,
          caseIndex: opts.case !== undefined ? Number(opts.case) : undefined,
          progress: !!opts.progress,
          serverHeapMiB,
        });
      },
      { lingers: true },
    ),
  );
suite('decoders', 'every decoder of network bytes or JSON (frames, stage, trust and coordinator messages, pieces, commitments, seals, manifests, vouchers, HTTP bodies and queries) under fuzz, one by one: accepted, refused by name, crashes')
  .option('--cases <n>', 'fuzz cases per decoder', '10000')
  .option('--seed <n>', 'fast-check seed (default: random, printed)')
  .option('--only <names>', 'comma-separated decoder names (default: all)')
  .option('--progress', 'a line per decoder on stderr')
  .action(
    printed((opts) => {
      const seed = opts.seed !== undefined ? Number(opts.seed) : Math.floor(Math.random() * 2 ** 31);
      const cases = Number(opts.cases);
      if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(cases) || cases < 1) throw new Error('--cases and --seed must be integers (cases ≥ 1)');
      return decodersBench({ cases, seed, only: opts.only?.split(',').map((s: string) => s.trim()), progress: !!opts.progress });
    }),
  );
suite('load', 'the grid server (a child `infermesh serve` with one donor) under hundreds of concurrent HTTP clients: requests/s, p50/p99, peak RSS, answers by status, dropped')
  .option('--clients <n>', 'concurrent clients', '200')
  .option('--seconds <n>', 'how long', '20')
  .option('--timeout <ms>', 'a request unanswered this long is dropped', '30000')
  .action(printed((opts) => loadBench({ clients: Number(opts.clients), seconds: Number(opts.seconds), timeoutMs: Number(opts.timeout) }), { lingers: true }));

suite('sdk', "the SDK package installed from its tarball into a fresh project (seconds, packages, MiB), the client's download of the default model, and the Node client on onnxruntime-node next to onnxruntime-web's WASM")
  .option('--tokens <n>', 'greedy completion tokens per generation', '64')
  .option('--rounds <n>', 'interleaved rounds per runtime (median reported)', '5')
  .option('--model <dir>', 'a model package directory for the runtimes (default: the default model, synthetic:110m q4)')
  .option('--no-install', 'skip the install measurement')
  .action(printed((opts) => sdkBench({ tokens: Number(opts.tokens), rounds: Number(opts.rounds), modelDir: opts.model, install: opts.install }), { lingers: true }));

suite('campaign', 'benchmark campaigns: signed results the server verifies and stores per second (resultsPerSecond), and from creating a campaign to its first result on the dashboard with a real donor tab (timeToFirstResultMs)')
  .option('--concurrency <n>', 'clients posting results at once', '16')
  .option('--seconds <n>', 'how long results are posted', '10')
  .option('--rounds <n>', 'campaigns timed to their first result, each on a fresh grid (median reported)', '3')
  .action(
    printed(
      (opts) => {
        const [concurrency, seconds, rounds] = [opts.concurrency, opts.seconds, opts.rounds].map(Number);
        if (![concurrency, seconds, rounds].every((n) => Number.isSafeInteger(n) && n >= 1)) throw new Error('--concurrency, --seconds and --rounds must be whole numbers ≥ 1');
        return campaignBench({ concurrency, seconds, rounds });
      },
      { lingers: true },
    ),
  );

suite('churn', 'generations through real Chromium donor tabs whose route loses a stage at a random token (closed tab, killed browser, dropped or throttled link, frozen tab): identical text, lost and repeated tokens, recovery time, throughput against unbroken runs')
  .option('--generations <n>', 'faulty generations', '50')
  .option('--tokens <n>', 'completion tokens per generation', '100')
  .option('--tabs <n>', 'donor tabs, each in a Chromium of its own (at least 6: three stages, a standby each)', '8')
  .option('--seed <n>', 'picks the faults, stages and tokens', '1')
  .option('--faults <list>', `comma-separated faults drawn from (${CHURN_FAULTS.join(', ')})`, CHURN_FAULTS.join(','))
  .option('--positions <list>', `comma-separated stage positions drawn from (${STAGE_POSITIONS.join(', ')})`, STAGE_POSITIONS.join(','))
  .option('--background-joins', 'the next generation starts while the tabs replacing those a fault took still join (on one small machine their start takes the CPU from the serving tabs)')
  .action(
    printed(
      async (opts) => {
        const [generations, tokens, tabs, seed] = [opts.generations, opts.tokens, opts.tabs, opts.seed].map(Number);
        if (![generations, tokens, tabs, seed].every(Number.isSafeInteger) || generations < 1 || tokens < 3 || tabs < 6) {
          throw new Error('--generations (≥ 1), --tokens (≥ 3), --tabs (≥ 6) and --seed must be integers');
        }
        const faults = listOf(opts.faults, CHURN_FAULTS, '--faults');
        const positions = listOf(opts.positions, STAGE_POSITIONS, '--positions');
        return churnBench({ generations, tokens, tabs, seed, faults, positions, backgroundJoins: !!opts.backgroundJoins });
      },
      { lingers: true },
    ),
  );

await program.parseAsync(process.argv);
