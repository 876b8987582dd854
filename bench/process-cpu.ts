/**
 * Where the machine's CPU goes, per process, over a sample: each process's user and system time
 * from Linux's /proc, Chromium's processes named by their type (browser, renderer, gpu-process,
 * utility:NetworkService) and others by their command. bench grid reports it beside
 * idleBusyPercent, so that an idle grid's cost can be traced to the part that spends it (the
 * connection monitor's pings showed up as the relay, the network service and every renderer).
 * Empty where there is no /proc.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessCpu {
  process: string;
  pid: number;
  /** percent of one core over the sample */
  percentOfCore: number;
}

/** Linux's clock ticks per second for /proc times (USER_HZ, 100 on every mainstream kernel). */
const TICKS_PER_SECOND = 100;
/** Processes below this share of a core are left out of a report. */
const MIN_PERCENT = 0.1;

/** A process's name from its /proc cmdline (Chromium rewrites its own into one space-separated string). */
export function processName(cmdline: string): string {
  const args = cmdline.split(/[\0 ]/).filter(Boolean);
  if (args.length === 0) return '';
  if (/chrom(e|ium)/.test(args[0])) {
    const type = args.find((a) => a.startsWith('--type='))?.slice('--type='.length) ?? 'browser';
    const sub = args.find((a) => a.startsWith('--utility-sub-type='))?.split('.').pop();
    return sub ? `chromium ${type}:${sub}` : `chromium ${type}`;
  }
  return args.slice(0, 2).map((a) => a.split('/').pop()).join(' ');
}

/** CPU ticks so far per process id, with its name. */
function snapshot(): Map<number, { name: string; ticks: number }> {
  const out = new Map<number, { name: string; ticks: number }>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // fields after the command's closing parenthesis: utime and stime are the 12th and 13th
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const name = processName(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
      if (name) out.set(Number(pid), { name, ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/** Starts a sample; calling the result ends it and returns the busiest processes, busiest first. */
export function startProcessCpuSample(): () => ProcessCpu[] {
  const before = snapshot();
  const started = performance.now();
  return () => {
    const after = snapshot();
    const seconds = (performance.now() - started) / 1000;
    const rows: ProcessCpu[] = [];
    for (const [pid, { name, ticks }] of after) {
      const spent = ticks - (before.get(pid)?.ticks ?? 0);
      const percentOfCore = (100 * spent) / TICKS_PER_SECOND / seconds;
      if (percentOfCore >= MIN_PERCENT) rows.push({ process: name, pid, percentOfCore: +percentOfCore.toFixed(1) });
    }
    return rows.sort((a, b) => b.percentOfCore - a.percentOfCore);
  };
}
