/** Compile time, peak resident memory and package size for each weight dtype. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { WEIGHT_DTYPES } from '../shared/model/graphs/linear.ts';
import { machineInfo } from './machine.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const MODELS = join(REPO, '..', 'shared', 'models');

interface CompileRow {
  model: string;
  dtype: string;
  seconds: number;
  packageBytes: number;
  peakRssMiB: number;
}

/** Each compile runs in its own process so its peak memory is its own. */
function compileOnce(model: string, dtype: string, out: string): Promise<CompileRow> {
  const args = model === 'stories260K'
    ? [join(MODELS, 'stories260K.bin'), '--tokenizer', join(MODELS, 'tok512.bin')]
    : [model];
  const script = `
    const { compileCommand } = await import(${JSON.stringify(join(REPO, 'cli/compile-command.ts'))});
    const t = performance.now();
    const m = await compileCommand(process.argv[1], { out: process.argv[2], dtype: process.argv[3], seed: 0, quiet: true, tokenizer: process.argv[4] });
    const seconds = (performance.now() - t) / 1000;
    console.log(JSON.stringify({ seconds, packageBytes: m.files.reduce((a, f) => a + f.size, 0), peakRssMiB: process.resourceUsage().maxRSS / 1024 }));
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, args[0], out, dtype, args[2] ?? ''], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`compile of ${model} (${dtype}) failed with exit code ${code}`));
      const r = JSON.parse(text.trim().split('\n').pop()!);
      resolve({ model, dtype, seconds: +r.seconds.toFixed(3), packageBytes: r.packageBytes, peakRssMiB: +r.peakRssMiB.toFixed(0) });
    });
  });
}

export async function compileBench(options: { models: string[] }) {
  const dir = await mkdtemp(join(tmpdir(), 'infermesh-bench-compile-'));
  const rows: CompileRow[] = [];
  try {
    for (const model of options.models) {
      for (const dtype of WEIGHT_DTYPES) {
        process.stderr.write(`bench compile: ${model} ${dtype}\n`);
        rows.push(await compileOnce(model, dtype, join(dir, `${model.replace(':', '-')}-${dtype}`)));
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { suite: 'compile', machine: machineInfo(), results: rows };
}
