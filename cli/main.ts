/**
 * The `infermesh` command line. Every failure ends as one line on stderr, naming the file or
 * input at fault, and exit code 1.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { InfermeshError } from '../shared/errors.ts';
import { compileCommand } from './compile-command.ts';
import { DEFAULT_MAX_TOKENS, DEFAULT_PROMPT } from './defaults.ts';
import { demoCommand } from './demo-command.ts';
import { donateCommand } from './donate-command.ts';
import { keysCreate, keysList, keysRevoke } from './keys-command.ts';
import { campaignCreate, campaignExport, campaignList, campaignReport, campaignStatus, campaignStop, DEFAULT_GRID_URL } from './campaign-command.ts';
import { generateCommand } from './generate-command.ts';
import { serveCommand } from './serve-command.ts';

const integer = (name: string, min: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
  return n;
};
const number = (name: string, min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a number from ${min} to ${max}`);
  return n;
};

/** Each demo tab runs an engine worker: more than this only makes a machine thrash. */
const MAX_DEMO_TABS = 16;
const DEMO_EXIT_GRACE_MS = 5_000;

const program = new Command('infermesh')
  .description('Compile Llama-family models into verified layer shards and run them across stages.')
  .showHelpAfterError('(run with --help for usage)');

program
  .command('compile')
  .description('compile a checkpoint (llama2.c .bin, Hugging Face directory, or synthetic:<tiny|110m|1b>) into a model package')
  .argument('<checkpoint>', 'path to a llama2.c .bin, a Hugging Face model directory, or synthetic:<preset>')
  .requiredOption('--out <dir>', 'package directory to write (written atomically)')
  .option('--dtype <dtype>', 'weight type: q4, q8 or f32', 'q4')
  .option('--tokenizer <file>', 'llama2.c tokenizer .bin (llama2.c checkpoints only)')
  .option('--seed <n>', 'seed for synthetic checkpoints', integer('--seed', 0), 0)
  .option('--name <name>', 'display name stored in the manifest')
  .action(async (checkpoint: string, opts) => {
    await compileCommand(checkpoint, opts);
  });

program
  .command('generate')
  .description('generate text from a model package with onnxruntime, split into in-process stages')
  .option('--model <dir>', 'model package directory (default: a synthetic 110M model generated on first use)')
  .option('--prompt <text>', 'prompt text', DEFAULT_PROMPT)
  .option('--max-tokens <n>', 'completion tokens at most', integer('--max-tokens', 1), DEFAULT_MAX_TOKENS)
  .option('--temperature <t>', 'sampling temperature (0 = greedy)', number('--temperature', 0, 100), 1.0)
  .option('--top-p <p>', 'nucleus sampling mass (1 = off)', number('--top-p', 0, 1), 0.9)
  .option('--seed <n>', 'sampling seed (llama2.c xorshift)', integer('--seed', 1), 42)
  .option('--stages <k>', 'number of in-process pipeline stages', integer('--stages', 1), 1)
  .option('--threads <n>', 'onnxruntime intra-op threads per session', integer('--threads', 1))
  .option('--verify', 'check every piece SHA-256 before running')
  .option('--url <url>', "generate through the grid server at this URL with the SDK, as an app would (--model is then one of the grid's package ids)")
  .action(async (opts) => {
    await generateCommand(opts);
  });

program
  .command('serve')
  .description('run the grid server: libp2p relay, coordinator, donor page, OpenAI-compatible API (serve --help lists its flags)')
  .helpOption(false)
  .allowUnknownOption()
  .allowExcessArguments()
  .action(async () => {
    // The server parses its own flags and INFERMESH_* variables (signaling-server/config.ts).
    await serveCommand(process.argv.slice(process.argv.indexOf('serve') + 1));
  });

const keys = program.command('keys').description("the OpenAI API's keys (a grid reachable beyond this machine requires them): create, list, revoke");
keys
  .command('create')
  .description('make a key; its secret is printed once, on stdout')
  .option('--name <name>', 'who or what it is for')
  .option('--budget <tokens>', 'prompt and completion tokens it may spend in all (default: no budget)', integer('--budget', 1))
  .option('--rate <n>', 'requests per minute at most (default: no limit)', integer('--rate', 1))
  .option('--token-rate <n>', 'tokens per minute at most (default: no limit)', integer('--token-rate', 1))
  .option('--data <dir>', "the server's data folder (default: serve's)")
  .action((opts) => keysCreate(opts));
keys
  .command('list')
  .description('every key: spending, limits, revoked or not')
  .option('--json', 'one JSON array on stdout')
  .option('--data <dir>', "the server's data folder (default: serve's)")
  .action((opts) => keysList(opts));
keys
  .command('revoke')
  .description('refuse a key from now on')
  .argument('<id>', 'the key id (key_…), as list shows it')
  .option('--data <dir>', "the server's data folder (default: serve's)")
  .action((id: string, opts) => keysRevoke(id, opts));

const campaign = program.command('campaign').description("benchmark campaigns across visitors' tabs on a running grid server: create, list, status, stop, export, report");
const gridUrl = ['--url <url>', `the grid server (default ${DEFAULT_GRID_URL})`] as const;
/** Creating and stopping campaigns take a key of the grid where it requires keys (a grid reachable beyond its machine). */
const apiKey = () => new Option('--key <key>', 'an API key of the grid (`infermesh keys create`), which creating and stopping campaigns need on a grid reachable beyond its machine').env('INFERMESH_API_KEY');
campaign
  .command('create')
  .description('start a campaign from a spec file (JSON or YAML); prints its id, the join link and the dashboard link. With --serve it runs the grid server in this process (as `infermesh serve`), creates the campaign on it and serves until Ctrl-C')
  .argument('<spec>', 'the spec file')
  .option(...gridUrl)
  .option('--serve', "run the grid server in this process, as `infermesh serve` does (INFERMESH_* variables apply), create the campaign on it and serve until Ctrl-C; the campaign is kept in the data folder's campaigns.sqlite, so a later `npm start` on the same folder still has it (not with --url)")
  .option('--port <n>', "with --serve: the server's port, 0 = any free (serve's --port)")
  .option('--data <dir>', "with --serve: the server's state folder (serve's --data)")
  .option('--model <dir>', "with --serve: the model package folder (serve's --model)")
  .addOption(apiKey())
  .option('--json', 'print the created campaign as JSON')
  .action((spec: string, opts) => campaignCreate(spec, opts));
campaign.command('list').description('every campaign on the grid, with its state and progress').option(...gridUrl).option('--json', 'print JSON').action((opts) => campaignList(opts));
campaign.command('status').description('a campaign: progress, devices, stragglers, what tabs skipped or failed, refusals').argument('<id>', 'the campaign id (cmp_…)').option(...gridUrl).option('--json', 'print JSON').action((id: string, opts) => campaignStatus(id, opts));
campaign.command('stop').description('stop taking results').argument('<id>', 'the campaign id (cmp_…)').option(...gridUrl).addOption(apiKey()).option('--json', 'print JSON').action((id: string, opts) => campaignStop(id, opts));
campaign
  .command('export')
  .description("every run, one row each (CSV, JSON Lines or Parquet), or the campaign's summary (JSON: its devices, tabs, what they skipped or failed, refusals)")
  .argument('<id>', 'the campaign id (cmp_…)')
  .option(...gridUrl)
  .addOption(new Option('--format <format>', 'csv, jsonl, parquet or summary').choices(['csv', 'jsonl', 'parquet', 'summary']).default('csv'))
  .option('--out <file>', 'write it here (default: stdout)')
  .action((id: string, opts) => campaignExport(id, opts));
campaign
  .command('report')
  .description("the dashboard's table and charts as one static HTML file (inline SVG, no script), for a paper")
  .argument('<id>', 'the campaign id (cmp_…)')
  .requiredOption('--out <file>', 'the HTML file to write')
  .option(...gridUrl)
  .action((id: string, opts) => campaignReport(id, opts));

program
  .command('donate')
  .description("join a grid as a donor from this terminal (onnxruntime-node on this machine's CPU), as its donor page does in a browser, until Ctrl-C")
  .argument('<url>', 'the grid, e.g. https://grid.example.org')
  .option('--threads <n>', 'onnxruntime threads (default: every core)', integer('--threads', 1))
  .option('--pay-to <address>', 'the EVM address earnings go to (default: an account whose key this command keeps in its cache folder)')
  .option('--key-file <file>', 'where that account\'s key is kept')
  .action(async (url: string, opts) => {
    await donateCommand(url, opts);
    // The donor stopped its node and engine, but a WebRTC library can keep a handle open after.
    setTimeout(() => process.exit(), DEMO_EXIT_GRACE_MS).unref();
  });

program
  .command('demo')
  .description('run the grid on this machine: a grid server, N headless Chromium donor tabs splitting the model, and a client generating through them')
  .option('--tabs <n>', 'donor tabs (each a Chromium context of its own)', (value: string) => {
    const n = integer('--tabs', 1)(value);
    if (n > MAX_DEMO_TABS) throw new InvalidArgumentError(`--tabs must be at most ${MAX_DEMO_TABS} (each tab runs an engine worker of its own)`);
    return n;
  }, 4)
  .option('--model <dir>', 'model package directory (default: the synthetic 110M model generate uses)')
  .option('--prompt <text>', 'prompt text', DEFAULT_PROMPT)
  .option('--max-tokens <n>', 'completion tokens at most', integer('--max-tokens', 1), DEFAULT_MAX_TOKENS)
  .option('--max-layers-per-node <k>', 'most layers one tab may serve (default: ceil(layers / tabs), so the model is split across the tabs)', integer('--max-layers-per-node', 1))
  .option('--temperature <t>', 'sampling temperature (0 = greedy)', number('--temperature', 0, 100), 1.0)
  .option('--top-p <p>', 'nucleus sampling mass (1 = off)', number('--top-p', 0, 1), 0.9)
  .option('--seed <n>', 'sampling seed (llama2.c xorshift)', integer('--seed', 1), 42)
  .option('--json', 'print one JSON object (text, speed, route, hops, tabs) on stdout')
  .option('--churn', 'give every layer a standby tab, then generate again closing a tab of the route halfway: the generation survives it with the same text, and the recovery is printed')
  .action(async (opts) => {
    try {
      await demoCommand(opts);
    } finally {
      // The demo closed everything it started, but a library can keep a handle open after
      // (seen once after the WebRTC nodes stopped): do not let that hold the command.
      setTimeout(() => process.exit(), DEMO_EXIT_GRACE_MS).unref();
    }
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const message = err instanceof InfermeshError ? err.message : (err as Error)?.message ?? String(err);
  process.stderr.write(`infermesh: error: ${message.split('\n')[0]}\n`);
  if (process.env.INFERMESH_DEBUG) console.error(err);
  process.exitCode = 1;
}
