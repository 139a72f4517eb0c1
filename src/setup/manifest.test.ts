import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layoutFor } from './layout.js';
import { MANIFEST_SCHEMA, requireManifest } from './manifest.js';

const art = (kind: string) => ({ hash: 'h', path: `/var/lib/fcvm/artifacts/${kind}-h/${kind}` });
const manifest = { schema: MANIFEST_SCHEMA, kernelVersion: '6.1', kernel: art('kernel'), initrd: art('initrd'), rootfs: art('rootfs'), createdAt: '2026-12-07T00:00:00Z' };

test('a user without artifacts of their own uses root\'s, whatever base directory they chose', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-manifest-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const system = join(dir, 'system-manifest.json');
  const user = layoutFor(join(dir, 'user-base'));
  // Root's setup has not run: the user is told to have root run it, not to run it.
  await assert.rejects(requireManifest(user, system, 1000), (e: Error & { hint?: string }) => {
    assert.match(e.message, /^fcvm is not set up in .*user-base \(artifacts manifest missing\), nor by root$/);
    assert.match(String(e.hint), /Have root run "sudo fcvm setup" once/);
    return true;
  });
  writeFileSync(system, JSON.stringify(manifest));
  assert.equal((await requireManifest(user, system, 1000)).kernelVersion, '6.1');
  // Root has no one else's to fall back on.
  await assert.rejects(requireManifest(user, system, 0), (e: Error & { hint?: string }) => /^Run "fcvm setup" first/.test(String(e.hint)) && !/nor by root/.test(e.message));
});
