/** A terminal progress bar on stderr for long compiles; silent when stderr is not a terminal. */
import cliProgress from 'cli-progress';
import type { CompileProgress } from '../shared/model/compiler.ts';

export function createCompileProgressBar(label: string): { update(p: CompileProgress): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {step} | {mparams}/{mtotal} M params | {duration_formatted}`,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(p) {
      const payload = { step: p.step, mparams: (p.done / 1e6).toFixed(1), mtotal: (p.total / 1e6).toFixed(1) };
      if (!started) {
        bar.start(p.total, p.done, payload);
        started = true;
      } else bar.update(p.done, payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
