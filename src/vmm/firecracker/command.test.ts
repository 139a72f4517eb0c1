import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { firstChild, processName, signalFromShellCode, sleep } from '../../util/proc.js';
import { firecrackerArgs, firecrackerCmdline, jailerArgs, jailerNamespaces, jailRoot } from './command.js';

test('firecracker is configured over its API; its arguments only name the socket, the id and the log', () => {
  assert.deepEqual(firecrackerArgs('ab12-3-4'), ['--api-sock', 'api.sock', '--id', 'ab12-3-4', '--log-path', 'firecracker.log', '--level', 'Warning', '--show-level']);
});

test('the jailer chroots, drops to the user, joins the namespace, then execs firecracker with the same arguments', () => {
  const args = jailerArgs({ jailer: { binary: '/usr/bin/jailer', uid: 123, gid: 456 }, firecracker: '/usr/bin/firecracker', id: 'ab12-3-4', chrootBase: '/d/vmm/ab12-3-4/jail', netns: 'fcvm-ab12-3-4' });
  const after = (flag: string) => args[args.indexOf(flag) + 1];
  assert.equal(after('--id'), 'ab12-3-4');
  assert.equal(after('--exec-file'), '/usr/bin/firecracker');
  assert.equal(after('--uid'), '123');
  assert.equal(after('--gid'), '456');
  assert.equal(after('--chroot-base-dir'), '/d/vmm/ab12-3-4/jail');
  assert.equal(after('--netns'), '/run/netns/fcvm-ab12-3-4');
  assert.deepEqual(args.slice(args.indexOf('--') + 1), [...firecrackerArgs('ab12-3-4')]);
  assert.equal(jailRoot('/d/jail', 'x'), '/d/jail/firecracker/x/root');
  assert.ok(Object.isFrozen(args));
});

test('jailed by fcvm: the jailer joins the VM cgroup with its limits, inside new PID, IPC and UTS namespaces', () => {
  const cgroup = { version: 1 as const, parent: 'fcvm', values: ['memory.limit_in_bytes=1', 'pids.max=2'] };
  const args = jailerArgs({ jailer: { binary: '/usr/bin/jailer', uid: 1, gid: 1, cgroup }, firecracker: '/usr/bin/firecracker', id: 'ab12-3-4', chrootBase: '/j' });
  const head = args.slice(0, args.indexOf('--'));
  assert.deepEqual(head.slice(head.indexOf('--cgroup-version')), ['--cgroup-version', '1', '--parent-cgroup', 'fcvm', '--cgroup', 'memory.limit_in_bytes=1', '--cgroup', 'pids.max=2']);
  assert.ok(!head.includes('--netns'));
  // Without fcvm's cgroup, the jailer's own v2 layout, as before.
  const plain = jailerArgs({ jailer: { binary: '/usr/bin/jailer', uid: 1, gid: 1 }, firecracker: '/usr/bin/firecracker', id: 'x', chrootBase: '/j' });
  assert.deepEqual(plain.slice(plain.indexOf('--cgroup-version'), plain.indexOf('--')), ['--cgroup-version', '2']);
  assert.deepEqual(jailerNamespaces().slice(0, 7), ['unshare', '--pid', '--ipc', '--uts', '--fork', '--kill-child=SIGKILL', '--']);
});

test('the guest command line: vsock channel, reboot to end the VM, and which /dev/vdX each disk is', () => {
  const line = firecrackerCmdline({ cmdline: 'console=ttyS0 reboot=t', disks: [
    { id: 'root', path: 'r', format: 'raw', readOnly: false },
    { id: 'image', path: 'i', format: 'raw', readOnly: true },
  ] });
  assert.equal(line, 'console=ttyS0 reboot=t reboot=k fcvm.channel=vsock fcvm.halt=reboot fcvm.disk.root=vda fcvm.disk.image=vdb');
});

/**
 * The jail's process chain, run for real with a stand-in for the jailer that drops to
 * another uid and then execs, as the jailer does before it execs Firecracker: a parent
 * (fcvm) SIGKILLed takes the stand-in with it; and a stand-in killed by a signal is
 * reported as that signal.
 */
test('the jailed Firecracker dies with fcvm even after the jailer dropped its uid, and its signal is reported', { skip: process.getuid?.() !== 0 && 'needs root (namespaces, setpriv --reuid)' }, async () => {
  const standIn = (chain: readonly string[]) => {
    // A stand-in "fcvm": starts the chain as the driver does, prints the stand-in's PID, then waits.
    const script = `const { spawn } = require('node:child_process');
      const c = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...${JSON.stringify(chain)}, 'setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', '--', 'sleep', '300'], { stdio: 'ignore' });
      setTimeout(() => process.stdout.write(String(c.pid)), 300); setInterval(() => {}, 1000);`;
    return spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  };
  const sleeperOf = async (fcvm: ChildProcess): Promise<number> => {
    const [head] = (await once(fcvm.stdout!, 'data')) as [Buffer];
    // setpriv -> unshare -> [init ->] stand-in, which is sleep once it has exec'd.
    let pid = Number(String(head));
    for (let i = 0; i < 50; i++) {
      let p: number | undefined = pid;
      while (p !== undefined && processName(p) !== 'sleep') p = firstChild(p);
      if (p !== undefined) return p;
      await sleep(100);
    }
    throw new Error('the stand-in did not start');
  };
  const alive = (pid: number) => processName(pid) === 'sleep';

  const fcvm = standIn(jailerNamespaces());
  const sleeper = await sleeperOf(fcvm);
  assert.ok(alive(sleeper));
  fcvm.kill('SIGKILL');
  for (let i = 0; i < 50 && alive(sleeper); i++) await sleep(100);
  assert.equal(alive(sleeper), false, 'the jailed process outlived fcvm');

  // Without the init as PID 1, the stand-in (uid changed, parent-death signal gone) survives:
  // what the chain is for. Killed here so it does not linger.
  const bare = standIn(jailerNamespaces().slice(0, 7));
  const orphan = await sleeperOf(bare);
  bare.kill('SIGKILL');
  await sleep(1000);
  const survived = alive(orphan);
  process.kill(orphan, 'SIGKILL');
  assert.equal(survived, true, 'without the init the stand-in died too: this kernel clears nothing, the test proves nothing');

  // Firecracker dying of a signal comes back as that signal through the shell's 128+N.
  const r = spawnSync('unshare', [...jailerNamespaces().slice(1), 'sh', '-c', 'kill -TERM $$']);
  assert.deepEqual(signalFromShellCode({ code: r.status, signal: r.signal }), { code: null, signal: 'SIGTERM' });
});
