import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command, Option } from 'commander';
import { complete, formatCompletion, type NameSource } from './engine.js';
import { fromCommander } from './tree.js';

function program(): Command {
  const p = new Command('fcvm').option('--base-dir <dir>');
  p.addCommand(new Command('ls').alias('ps').option('--json'));
  p.addCommand(new Command('stop').argument('[names...]').option('-t, --time <s>'));
  p.addCommand(new Command('logs').argument('<name>'));
  p.addCommand(new Command('__complete'), { hidden: true });
  const snap = new Command('snapshot');
  snap.addCommand(new Command('serve').argument('<tag>'));
  snap.addCommand(new Command('run').option('--snapshot <tag>'));
  p.addCommand(snap);
  const podman = new Command('podman');
  podman.addCommand(new Command('run').argument('[image]').argument('[command...]').option('-t, --tty').option('--network <m>').option('--env-file <f>')
    .option('-v, --volume <HOST-DIR:CTR-DIR[:ro]>')
    .addOption(new Option('--memory <m>').hideHelp()));
  p.addCommand(podman);
  return p;
}

const names: NameSource = { vms: async () => ['web', 'db'], kept: async () => ['web', 'db', 'done'], tags: async () => ['warm'], images: async () => ['localhost/bb', 'localhost/bb:latest'] };
const words = async (...w: string[]) => (await complete(fromCommander(program()), w, names)).words;

test('commands and aliases; hidden ones never', async () => {
  assert.deepEqual(await words(''), ['logs', 'ls', 'podman', 'ps', 'snapshot', 'stop']);
  assert.deepEqual(await words('sn'), ['snapshot']);
  assert.deepEqual(await words('snapshot', ''), ['run', 'serve']);
});

test('flags of the command under the cursor, without hidden ones', async () => {
  assert.deepEqual(await words('podman', 'run', '--'), ['--env-file', '--help', '--network', '--tty', '--volume']);
  assert.deepEqual(await words('podman', 'run', '-'), ['--env-file', '--help', '--network', '--tty', '--volume', '-h', '-t', '-v']);
});

test('values: VM names, tags, images, choices; files are left to the shell', async () => {
  assert.deepEqual(await words('stop', ''), ['db', 'web']);
  assert.deepEqual(await words('stop', 'web', 'd'), ['db'], 'stop takes many');
  assert.deepEqual(await words('stop', '-t', ''), [], 'a flag\'s value is not a VM');
  assert.deepEqual(await words('logs', 'd'), ['db', 'done'], 'logs also takes a VM that ended and was kept');
  assert.deepEqual(await words('snapshot', 'serve', ''), ['warm']);
  assert.deepEqual(await words('snapshot', 'run', '--snapshot', 'w'), ['warm']);
  assert.deepEqual(await words('podman', 'run', 'local'), ['localhost/bb', 'localhost/bb:latest']);
  assert.deepEqual(await words('podman', 'run', '--network', 'r'), ['rootless']);
  assert.deepEqual(await words('podman', 'run', 'localhost/bb', ''), [], 'the container\'s command is its own');
  assert.deepEqual(await words('--base-dir', '/x', 'st'), ['stop']);
  const files = await complete(fromCommander(program()), ['podman', 'run', '--env-file', ''], names);
  assert.equal(formatCompletion(files), 'files\n');
  // A placeholder with "[" in it still takes a value: -v's is a host directory, then the image.
  const dirs = await complete(fromCommander(program()), ['podman', 'run', '-v', '/et'], names);
  assert.equal(formatCompletion(dirs), 'dirs\n');
  assert.deepEqual(await words('podman', 'run', '-v', '/a:/b', 'local'), ['localhost/bb', 'localhost/bb:latest']);
});
