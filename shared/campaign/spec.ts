/**
 * A benchmark campaign as a researcher writes it (JSON or YAML): which model packages, which
 * workloads, on which execution providers, how many repetitions per device after how many
 * warm-up runs, how many devices or runs in all, and when it ends. Checked field by field; the
 * first problem is refused as a CampaignSpecError naming the field (`workloads[1].promptTokens`).
 * What only the server knows (which packages it serves) is checked where the campaign is created
 * (signaling-server/campaigns/).
 */
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../errors.ts';
import type { InfermeshErrorOptions } from '../errors.ts';

/** A campaign spec that is not one; `field` is the path of the first problem, '' for the whole. */
export class CampaignSpecError extends UsageError {
  override name = 'CampaignSpecError';
  readonly field: string;
  constructor(field: string, problem: string, options?: InfermeshErrorOptions) {
    super(field ? `campaign spec: ${field}: ${problem}` : `campaign spec: ${problem}`, options);
    this.field = field;
  }
}

export const EXECUTION_PROVIDERS = ['webgpu', 'wasm'] as const;
export type ExecutionProviderName = (typeof EXECUTION_PROVIDERS)[number];
const DTYPES = ['q4', 'q8', 'f32'] as const;
/** A workload's tokens at most: a benchmark, not a novel. */
const MAX_TOKENS = 4096;

const count = (min: number, max: number) => z.number().int().min(min).max(max);
const time = z.iso.datetime({ offset: true });

const workload = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a name of letters, digits, ".", "_" or "-" (64 at most)'),
  promptTokens: count(1, MAX_TOKENS),
  decodeTokens: count(0, MAX_TOKENS),
  // Batched runs come with batching in the engine; until then a batch is one sequence.
  batch: z.literal(1, 'only 1: the engine runs one sequence at a time').default(1),
  /** the blocks a run covers: 'all', or [start, end) of the model's layers */
  layers: z.union([z.literal('all'), z.strictObject({ start: count(0, 1 << 16), end: count(1, 1 << 16) })]).default('all'),
});

const schema = z
  .strictObject({
    name: z.string().min(1).max(200),
    models: z
      .array(z.strictObject({ package: z.string().min(1).max(200), dtypes: z.array(z.enum(DTYPES)).min(1).optional() }))
      .min(1),
    workloads: z.array(workload).min(1).max(32),
    providers: z.array(z.enum(EXECUTION_PROVIDERS)).min(1),
    repetitions: count(1, 1000),
    warmup: count(0, 100).default(1),
    target: z.strictObject({ devices: count(1, 1_000_000).optional(), runs: count(1, 100_000_000).optional() }).refine((t) => t.devices !== undefined || t.runs !== undefined, 'name devices, runs or both'),
    startsAt: time.optional(),
    endsAt: time,
  })
  .superRefine((spec, ctx) => {
    const names = new Set<string>();
    spec.workloads.forEach((w, i) => {
      if (names.has(w.name)) ctx.addIssue({ code: 'custom', path: ['workloads', i, 'name'], message: `${w.name} is already the name of another workload` });
      names.add(w.name);
      if (w.layers !== 'all' && w.layers.end <= w.layers.start) ctx.addIssue({ code: 'custom', path: ['workloads', i, 'layers', 'end'], message: 'must be after start' });
    });
    const start = spec.startsAt ? Date.parse(spec.startsAt) : undefined;
    if (start !== undefined && Date.parse(spec.endsAt) <= start) ctx.addIssue({ code: 'custom', path: ['endsAt'], message: `must be after startsAt (${spec.startsAt})` });
  });

export type CampaignSpec = z.output<typeof schema>;
export type CampaignWorkload = CampaignSpec['workloads'][number];

/** The first issue's path, as a researcher would write it: `workloads[1].layers.end`. */
function fieldOf(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
}

/** A spec already parsed from JSON or YAML, checked. */
export function checkCampaignSpec(value: unknown, source?: string): CampaignSpec {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
  // An unknown field is named itself, not its parent: a typo ("repetition") is found at once.
  const field = fieldOf([...issue.path, ...keys.slice(0, 1)]);
  const problem = keys.length > 0 ? 'is not a field of a campaign spec here' : issue.message;
  throw new CampaignSpecError(field, problem, { source });
}

/** A spec is a page of settings; past this it is not one (and YAML takes seconds on some large inputs). */
export const MAX_SPEC_BYTES = 64 << 10;

/** A spec file's text: JSON, or YAML (a superset of JSON, read by the YAML parser only when JSON's fails). */
export function parseCampaignSpec(text: string, source?: string): CampaignSpec {
  const bytes = new TextEncoder().encode(text).byteLength;
  if (bytes > MAX_SPEC_BYTES) throw new CampaignSpecError('', `is ${bytes} bytes; a spec is at most ${MAX_SPEC_BYTES}`, { source });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  try {
    // Warnings (an unknown tag) are not printed: what the tag made is checked field by field below.
    value ??= parseYaml(text, { maxAliasCount: 100, logLevel: 'error' });
  } catch (err) {
    throw new CampaignSpecError('', `not JSON or YAML: ${(err as Error).message.split('\n')[0]}`, { source, cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CampaignSpecError('', 'must be an object of fields (name, models, workloads, ...)', { source });
  return checkCampaignSpec(value, source);
}
