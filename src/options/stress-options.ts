import { errors } from '../errors/catalogue.js';
import { parseImageRef } from './image-ref.js';
import { parseCpus, parseMemory, validateName } from './parse.js';

export interface StressRawFlags {
  snapshot?: string;
  image?: string;
  clones: string;
  batch: string;
  publishBase?: string;
  json?: string;
  plot?: string;
  healthTimeout: string;
  cpu?: string;
  mem?: string;
}

export interface StressOptions {
  /** Clones of an existing snapshot, or of one taken from IMAGE for this run (deleted after). */
  source: { kind: 'snapshot'; tag: string } | { kind: 'image'; image: string };
  clones: number;
  batch: number;
  /** Clone i publishes host port publishBase+i and is healthy once it answers HTTP there; else healthy once an exec runs. */
  publishBase: number | undefined;
  json: string | undefined;
  plot: string | undefined;
  healthTimeoutSeconds: number;
  /** With --image: the source VM's vCPUs and memory (a clone has its source's). */
  sourceArgs: string[];
}

const USAGE = 'Usage: fcvm test stress --snapshot TAG | --image IMAGE --clones N --batch B [--publish-base PORT] [--json FILE] [--plot FILE]';

function positiveInt(flag: string, value: string, max: number, hint: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isInteger(n) || n < 1 || n > max) throw errors.invalidOption(flag, value, `not a whole number from 1 to ${max}`, hint);
  return n;
}

/** Turns `fcvm test stress` flags into validated options. Pure. */
export function stressOptionsFromFlags(raw: StressRawFlags): StressOptions {
  if ((raw.snapshot === undefined) === (raw.image === undefined)) throw errors.usage('give exactly one of --snapshot and --image', USAGE);
  const source = raw.snapshot !== undefined ? { kind: 'snapshot' as const, tag: validateName(raw.snapshot, 'snapshot tag') } : { kind: 'image' as const, image: parseImageRef(raw.image!) };
  const clones = positiveInt('--clones', raw.clones, 1000, 'Give how many clones to start, for example --clones 50');
  const batch = positiveInt('--batch', raw.batch, 1000, 'Give how many clones start at once, for example --batch 10');
  let publishBase: number | undefined;
  if (raw.publishBase !== undefined) {
    publishBase = positiveInt('--publish-base', raw.publishBase, 65535, 'Give the first host port, for example --publish-base 20000');
    if (publishBase + clones - 1 > 65535) throw errors.invalidOption('--publish-base', raw.publishBase, `ports up to ${publishBase + clones - 1} are needed`, 'Give a lower first port');
  }
  const healthTimeoutSeconds = positiveInt('--health-timeout', raw.healthTimeout, 3600, 'Give seconds, for example --health-timeout 180');
  if ((raw.cpu !== undefined || raw.mem !== undefined) && source.kind !== 'image') {
    throw errors.usage('--cpu and --mem size the VM taken from --image; a snapshot\'s clones have its size', USAGE);
  }
  const sourceArgs = [...(raw.cpu !== undefined ? ['--cpu', String(parseCpus(raw.cpu))] : []), ...(raw.mem !== undefined ? ['--mem', String(parseMemory(raw.mem))] : [])];
  return { source, clones, batch: Math.min(batch, clones), publishBase, json: raw.json, plot: raw.plot, healthTimeoutSeconds, sourceArgs };
}
