import { join } from 'node:path';
import { GUEST_CHANNELS, type GuestChannel, type VmSpec } from '../driver.js';

/** microvm's firmware: qboot, found in QEMU's data directory. */
export const MICROVM_FIRMWARE = 'qboot.rom';

/** Paths QEMU uses inside a VM's run directory. */
export function qemuPaths(runDir: string) {
  return {
    qmp: join(runDir, 'qmp.sock'),
    channel: (name: GuestChannel) => join(runDir, `${name}.sock`),
    console: join(runDir, 'console.log'),
    pidfile: join(runDir, 'qemu.pid'),
    /** Device state goes out (snapshot) and comes in (restore) over these. */
    migrateOut: join(runDir, 'migrate-out.sock'),
    migrateIn: join(runDir, 'migrate-in.sock'),
  };
}

/** The virtio-serial port name of a guest channel, as the guest finds it in /sys/class/virtio-ports. */
export const portName = (name: GuestChannel) => `fcvm.${name}`;

/** QEMU's own seccomp filter: obsolete, privilege-raising, process-spawning and scheduling system calls kill it. */
export const SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

export interface QemuArgOptions {
  /** A restore: start paused, waiting for device state. */
  incoming?: boolean;
  /** Turn on QEMU's seccomp filter (SANDBOX). */
  sandbox?: boolean;
  /** Guest RAM: the file QEMU maps (for a jailed clone, a passed fd's /proc/self/fd/N), and whether shared. */
  memory: { path: string; shared: boolean };
  /** Caps QEMU's I/O worker threads (its cgroup caps its tasks). */
  ioThreads?: number;
  /**
   * A balloon that only reports free pages (never inflated), and a clone's RAM file
   * opened read-only: QEMU 8.2 or newer (driver.ts, hasFreePageReporting).
   */
  freePageReporting?: boolean;
  /** Under KVM, the host CPU's virtualization extension given to the guest (nested profile). */
  cpuVirt?: 'svm' | 'vmx';
}

/**
 * The QEMU command line for a spec, as an immutable value: `-M microvm` with ACPI (the
 * Debian kernel finds virtio-mmio devices through ACPI), virtio-blk disks, TAP NICs,
 * a QMP socket and a virtio-serial port for the agent. Disks are opened as given (the
 * driver has made copy-on-write overlays already). Guest RAM is a file: shared for a
 * cold VM (so a snapshot can copy it), the snapshot's, mapped privately, for a clone.
 * Pure: tested as a value.
 */
export function qemuArgs(spec: VmSpec, opts: QemuArgOptions): readonly string[] {
  const p = qemuPaths(spec.runDir);
  const args = [
    '-M', 'microvm,acpi=on,x-option-roms=off,isa-serial=on,rtc=on,memory-backend=mem',
    // RAM is a file: a cold VM's in tmpfs (shared, so a snapshot can copy it), a clone's
    // the snapshot's copy mapped privately (clones share its page cache). With free page
    // reporting, a clone opens it read-only: QEMU would punch the pages its guest reports
    // free out of the file itself, which every sibling clone maps.
    '-object', `memory-backend-file,id=mem,size=${spec.memoryMiB}M,mem-path=${escapeOpt(opts.memory.path)},${opts.memory.shared ? 'share=on' : `share=off${opts.freePageReporting ? ',readonly=on,rom=off' : ''}`}`,
    ...(spec.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', opts.cpuVirt ? `host,+${opts.cpuVirt}` : 'host'] : ['-accel', `tcg,thread=multi${spec.tcgCacheMiB ? `,tb-size=${spec.tcgCacheMiB}` : ''}`, '-cpu', 'max']),
    '-smp', String(spec.vcpus),
    '-m', `${spec.memoryMiB}M`,
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    // qboot loads the kernel itself (no option ROM); QEMU 10's default microvm firmware is
    // SeaBIOS, which with option ROMs off finds no kernel and boots no disk.
    '-bios', MICROVM_FIRMWARE,
    '-kernel', spec.kernel,
    ...(spec.initrd ? ['-initrd', spec.initrd] : []),
    '-append', spec.cmdline,
    '-chardev', `socket,id=qmp,path=${p.qmp},server=on,wait=off`,
    '-mon', 'chardev=qmp,mode=control',
    // append=on: the supervisor may cut the log while QEMU writes (see boundConsoleLog).
    '-chardev', `file,id=console,path=${p.console},append=on`,
    '-serial', 'chardev:console',
    '-device', `virtio-serial-device,max_ports=${GUEST_CHANNELS.length + 1}`,
    // One port per channel, so no channel's traffic waits behind another's.
    ...GUEST_CHANNELS.flatMap((n) => ['-chardev', `socket,id=ch-${n},path=${p.channel(n)},server=on,wait=off`, '-device', `virtserialport,chardev=ch-${n},name=${portName(n)}`]),
    '-device', 'virtio-rng-device',
    // A restore starts paused and takes its device state through QMP migrate-incoming.
    ...(opts.incoming ? ['-incoming', 'defer'] : []),
    ...(opts.sandbox ? ['-sandbox', SANDBOX] : []),
    ...(opts.ioThreads ? ['-object', `main-loop,id=main-loop,thread-pool-max=${opts.ioThreads}`] : []),
  ];
  for (const d of spec.disks) {
    const file = `file.driver=file,file.filename=${escapeOpt(d.path)}`;
    args.push('-blockdev', `driver=${d.format},node-name=${d.id},${file},read-only=${d.readOnly ? 'on' : 'off'},discard=unmap,cache.direct=off`);
    args.push('-device', `virtio-blk-device,drive=${d.id},serial=${d.id}`);
  }
  for (const n of spec.nics) {
    if (n.kind === 'tap') args.push('-netdev', `tap,id=${n.id},ifname=${n.tap},script=no,downscript=no`);
    else {
      const fwd = n.hostForwards.map((f) => `,hostfwd=${f.proto}:${f.hostIp}:${f.hostPort}-:${f.guestPort}`).join('');
      args.push('-netdev', `user,id=${n.id},net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3${fwd}`);
    }
    args.push('-device', `virtio-net-device,netdev=${n.id},mac=${n.mac}`);
  }
  // Last: a device added before the others would move them to other virtio-mmio slots,
  // whose addresses name their state in a snapshot.
  if (opts.freePageReporting) args.push('-device', 'virtio-balloon-device,free-page-reporting=on');
  return Object.freeze(args);
}

/** QEMU option values escape "," by doubling it. */
function escapeOpt(v: string): string {
  return v.replace(/,/g, ',,');
}

/** The guest kernel command line. */
export function guestCmdline(extra: readonly string[] = []): string {
  return ['console=ttyS0', 'reboot=t', 'panic=-1', 'quiet', 'loglevel=4', 'random.trust_cpu=on', 'cryptomgr.notests', ...extra].join(' ');
}
