import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoLeftovers, CLI, fcvm, vmsAvailable, waitFor } from '../helpers.js';
import { spawnOnPty } from '../pty.js';

test('snapshot run -it attaches to the terminal of a container started with -dit, and its exit code comes back', async (t) => {
  if (!vmsAvailable(t)) return;
  const src = 'it-tty-src';
  const tag = 'it-tty-snap';
  await fcvm(['snapshots', 'delete', tag]);
  const d = await fcvm(['podman', 'run', '-dit', '--rm', '--name', src, '--stop-timeout', '1', 'localhost/bb', 'sh']);
  assert.equal(d.exitCode, 0, d.stderr);
  try {
    await waitFor(async () => (JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as { name: string; status: string }[]).some((v) => v.name === src && v.status === 'healthy'), 180_000, 'the source');
    const snap = await fcvm(['snapshot', 'create', src, '--tag', tag]);
    assert.equal(snap.exitCode, 0, snap.stderr);
    // Without -t the clone cannot get a terminal its container never had; with it, it takes the one it has.
    const s = await spawnOnPty(process.execPath, ['--', CLI, 'snapshot', 'run', '--snapshot', tag, '--name', 'it-tty-clone', '-it'], 90, 20);
    try {
      // The shell waits at its prompt since the snapshot: give it a line, as a user would.
      await new Promise((r) => setTimeout(r, 3000));
      let seen = false;
      for (let i = 0; i < 60 && !seen; i++) {
        const mark = s.output().length;
        s.write('echo clone-$((6*7))\r');
        seen = await s.expect(/clone-42\r*\n/, 3000, mark).then(() => true, () => false);
      }
      assert.ok(seen, `no answer from the clone's shell: ${JSON.stringify(s.output().slice(-300))}`);
      const mark = s.output().length;
      s.write('stty size\r');
      await s.expect(/\n20 90\r*\n/, 15_000, mark);
      s.write('exit 5\r');
      assert.equal(await s.exited, 5);
    } finally {
      s.close();
    }
  } finally {
    await fcvm(['stop', src]);
    await fcvm(['snapshots', 'delete', tag]);
  }
  assertNoLeftovers();
});
