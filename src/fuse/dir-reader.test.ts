import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fsCalls } from '../os/fs-calls.js';
import { isEmptyExactDir } from './dir-reader.js';
import { ownersForProcess } from './owners.js';
import { Passthrough } from './passthrough.js';

test('isEmptyExactDir: an empty directory on a case-sensitive file system, not one with a name in it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-dir-'));
  const fs = new Passthrough(await fsCalls(), { readOnly: false, owners: ownersForProcess() });
  try {
    fs.openRoot(dir);
    mkdirSync(join(dir, 'empty'));
    mkdirSync(join(dir, 'full'));
    writeFileSync(join(dir, 'full', '.x'), '');
    mkdirSync(join(dir, 'dots'));
    writeFileSync(join(dir, 'dots', '...'), '');
    const id = (name: string) => fs.lookup(1n, Buffer.from(`${name}\0`)).inode.nodeid;
    assert.equal(isEmptyExactDir(fs, id('empty')), true);
    assert.equal(isEmptyExactDir(fs, id('full')), false);
    assert.equal(isEmptyExactDir(fs, id('dots')), false);
    writeFileSync(join(dir, 'empty', 'now'), '');
    assert.equal(isEmptyExactDir(fs, id('empty')), false);
  } finally {
    fs.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
