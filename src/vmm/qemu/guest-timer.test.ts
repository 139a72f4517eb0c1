import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, appendFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guardGuestTimer, MAX_TIMER_RESETS, timerVerdict, TimerCalibrationError } from './guest-timer.js';
import { createLogger } from '../../util/log.js';

// Lines as the Debian 6.1 guest kernel prints them with apic=verbose (captured from real boots).
const GOOD = '[    0.324595] ..... calibration result: 3999976\n[    0.324595] ..... host bus clock speed is 999.3976 MHz.\n';
const SLOW = '[    1.267183] ..... calibration result: 4529005\n[    1.267183] ..... host bus clock speed is 1132.1251 MHz.\n';
const DISABLED = '[    0.3] ..... host bus clock speed is 0.0003 MHz.\n[    0.3] APIC frequency too slow, disabling apic timer\n';

test('the verdict: within 10 % of QEMU\'s 1 GHz bus is right; off by more, or disabled, is wrong; nothing yet is no verdict', () => {
  assert.deepEqual(timerVerdict(GOOD), { kind: 'ok', busMHz: 999.3976 });
  assert.deepEqual(timerVerdict(SLOW), { kind: 'wrong', busMHz: 1132.1251 });
  assert.deepEqual(timerVerdict(DISABLED), { kind: 'disabled' });
  assert.equal(timerVerdict('[    0.3] ..... host bus clock speed is 999.39'), undefined, 'a line cut short is not read');
  assert.equal(timerVerdict('Linux version 6.1.0\n'), undefined);
});

test('the guard resets a guest whose timer is wrong, reads only what the new boot prints, and gives up after its limit', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fcvm-timer-'));
  const log = createLogger('error', () => {});
  try {
    const consoleLog = join(dir, 'console.log');
    await writeFile(consoleLog, SLOW);
    let resets = 0;
    const took = await guardGuestTimer({ consoleLog, alive: () => true, log, reset: async () => void (resets++, await appendFile(consoleLog, resets < 2 ? DISABLED : GOOD)) }, 2000, 5);
    assert.equal(took, 2);
    assert.equal(resets, 2);

    await writeFile(consoleLog, SLOW);
    await assert.rejects(
      guardGuestTimer({ consoleLog, alive: () => true, log, reset: () => appendFile(consoleLog, SLOW) }, 2000, 5),
      (e: unknown) => e instanceof TimerCalibrationError && e.resets === MAX_TIMER_RESETS,
    );

    await writeFile(consoleLog, 'Linux version 6.1.0\n');
    assert.equal(await guardGuestTimer({ consoleLog, alive: () => true, log, reset: async () => assert.fail('no verdict, no reset') }, 100, 5), 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
