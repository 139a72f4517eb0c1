/** clock_gettime(2) for the calling thread's CPU time: how much a worker really works. */
import { ffi } from './ffi.js';

const CLOCK_THREAD_CPUTIME_ID = 3;

let get: (() => number) | undefined;

/** CPU time the calling thread has used, in nanoseconds. */
export function threadCpuNs(): number {
  if (!get) {
    const { lib } = ffi();
    const clock_gettime = lib.func('int clock_gettime(int clk, void *ts)');
    const ts = new BigInt64Array(2);
    get = () => {
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, ts);
      return Number(ts[0]!) * 1e9 + Number(ts[1]!);
    };
  }
  return get();
}
