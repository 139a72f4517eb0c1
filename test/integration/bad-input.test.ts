import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoLeftovers, fcvm, filesOutsideRunDirs, layout } from '../helpers.js';

/**
 * Bad input across every command: each case must print one line that names the bad
 * thing (first pattern) and says what to do (second), exit 125 as podman does for its
 * own errors, and leave nothing behind. None of them boots a VM.
 */
type Case = [args: string[], names: RegExp, todo: RegExp];
const HELP = /Run the command with --help/;
const NAME_RULE = /Use 1-63 characters from a-z A-Z 0-9 \. _ -/;
const PUBLISH = /Use --publish \[\[HOSTIP:\]HOSTPORT:\]GUESTPORT/;

const cases: Case[] = [
  // the program and its groups
  [['frob'], /unknown command 'frob'/, /Run "fcvm --help" to see the commands/],
  [[], /missing command/, /Run "fcvm --help"/],
  [['podman'], /missing command/, /Run "fcvm --help"/],
  [['snapshot'], /missing command/, /Run "fcvm --help"/],
  [['snapshot', 'frob'], /unknown command 'frob'/, /Run "fcvm --help"/],
  // podman's commands fcvm lacks: why, and what does the job (never "did you mean stop?" for top)
  [['podman', 'top', 'web'], /there is no "top" command: the container's processes are in its VM/, /Use "fcvm exec NAME ps -ef"/],
  [['top', 'web', '-eo', 'pid'], /there is no "top" command/, /Use "fcvm exec NAME ps -ef"/],
  [['podman', 'pull', '--tls-verify=false', 'reg/x'], /there is no "pull" command: images are the host podman's/, /Use "podman pull" on the host/],
  [['podman', 'cp', 'web:/etc/hosts', 'web:/x'], /cp: copying from one VM to another is not supported/, /Copy to the host first/],
  [['cp', 'a', 'b'], /cp: neither "a" nor "b" names a VM/, /Usage: fcvm cp/],
  [['cp', 'web:', '.'], /cp: no path after "web:"/, /Give the path in the container/],
  [['cp', 'web:/x'], /missing required argument 'dest'/, HELP],
  [['podman', 'start', 'web'], /there is no "start" command: a VM that ended is not started again/, /Run a new one with "fcvm podman run --name NAME/],
  [['--log-level', 'loud', 'ls'], /argument 'loud' is invalid/, HELP],
  [['--base-dir', '', 'ls'], /invalid --base-dir "": it is empty/, /Give a directory/],
  // setup, ls
  [['setup', 'extra'], /too many arguments for 'setup'/, HELP],
  [['setup', '--frob'], /unknown option '--frob'/, /Run the command with --help to see its options/],
  [['ls', '--pid', 'abc'], /invalid --pid "abc": not a process ID/, /Give the PID shown by "fcvm ls"/],
  [['ls', '--pid', '0'], /invalid --pid "0"/, /Give the PID/],
  [['ls', 'extra'], /too many arguments for 'ls'/, HELP],
  // exec
  [['exec'], /no VM given/, /Usage: fcvm exec NAME\|--pid PID/],
  [['exec', 'x'], /no command given/, /Usage: fcvm exec/],
  [['exec', 'bad/name', '--', 'true'], /invalid VM name "bad\/name": it looks like a path/, NAME_RULE],
  [['exec', '--pid', 'abc', '--', 'true'], /invalid --pid "abc"/, /Give the PID/],
  [['exec', 'it-nosuch', '--', 'true'], /no running VM named "it-nosuch"/, /Run "fcvm ls" to see running VMs/],
  [['exec', 'x', '-e', 'BAD KEY=2', '--', 'true'], /invalid --env "BAD KEY=2": "BAD KEY" is not a valid variable name/, /Use --env KEY=VALUE/],
  [['exec', 'x', '--frob', '--', 'true'], /unknown option '--frob'/, /see its options/],
  // snapshot create / serve
  [['snapshot', 'create', 'x'], /required option '--tag <tag>' not specified/, HELP],
  [['snapshot', 'create', 'x', '--tag', '../a'], /invalid snapshot tag "\.\.\/a": it looks like a path/, NAME_RULE],
  [['snapshot', 'create', '--pid', '1', 'x', '--tag', 'a'], /give a VM name or --pid, not both/, /Usage: fcvm snapshot create/],
  [['snapshot', 'create', '--tag', 'a'], /no VM given/, /Usage: fcvm snapshot create/],
  [['podman', 'prepare'], /no image given/, /Usage: fcvm podman prepare IMAGE/],
  [['snapshot', 'create', 'it-nosuch', '--tag', 'it-t1'], /no running VM named "it-nosuch"/, /Run "fcvm ls"/],
  [['snapshot', 'serve'], /missing required argument 'tag'/, HELP],
  [['snapshot', 'serve', 'a b'], /invalid snapshot tag "a b": it contains characters/, NAME_RULE],
  [['snapshot', 'serve', 'it-nosuch'], /no snapshot tagged "it-nosuch"/, /Run "fcvm snapshots" to list snapshots/],
  // snapshot run
  [['snapshot', 'run'], /give exactly one of --pid and --snapshot/, /Usage: fcvm snapshot run/],
  [['snapshot', 'run', '--pid', '1', '--snapshot', 'a'], /give exactly one of --pid and --snapshot/, /Usage: fcvm snapshot run/],
  [['snapshot', 'run', '--pid', 'abc'], /invalid --pid "abc"/, /Give the PID of "fcvm snapshot serve"/],
  [['snapshot', 'run', '--pid', '999999999'], /no snapshot server with pid 999999999/, /Run "fcvm snapshot ls"/],
  [['snapshot', 'run', '--snapshot', 'it-nosuch'], /no snapshot tagged "it-nosuch"/, /Run "fcvm snapshots"/],
  [['snapshot', 'run', '--snapshot', 'a', '--network', 'mesh'], /invalid --network "mesh": unknown value/, /Use one of: bridged, rootless, none/],
  [['snapshot', 'run', '--snapshot', 'a', '-p', '1:2:3:4'], /invalid --publish "1:2:3:4": expected \[HOSTIP:\]\[HOSTPORT:\]GUESTPORT/, PUBLISH],
  [['snapshot', 'run', '--snapshot', 'a', '--boot-timeout', 'x'], /invalid --boot-timeout "x"/, /Give --boot-timeout in seconds/],
  [['snapshot', 'run', '--snapshot', 'a', '--name', 'a;b'], /invalid VM name "a;b"/, NAME_RULE],
  [['snapshot', 'run', '--snapshot', 'a', '--exec', ''], /invalid --exec "": it is empty/, /Give a command/],
  [['snapshot', 'run', '--snapshot', 'a', '--health-check', 'ftp://x'], /invalid --health-check "ftp:\/\/x": only http:\/\/ is supported/, /Give an http:\/\/ URL/],
  // snapshots
  [['snapshots', 'delete'], /missing required argument 'tag'/, HELP],
  [['snapshots', 'delete', 'it-nosuch'], /no snapshot tagged "it-nosuch"/, /Run "fcvm snapshots"/],
  [['snapshots', 'delete', '..'], /invalid snapshot tag "\.\.": it looks like a path/, NAME_RULE],
  [['snapshots', '--frob'], /unknown option '--frob'/, /see its options/],
  // podman run
  [['podman', 'run'], /no image given/, /Usage: fcvm podman run/],
  [['podman', 'run', 'UPPER/Case'], /invalid image "UPPER\/Case": repository name must be lowercase/, /Give an image like localhost\/NAME/],
  [['podman', 'run', 'localhost/'], /invalid image "localhost\/": it has an empty name component/, /Give an image like/],
  [['podman', 'run', 'bb:-x'], /invalid image "bb:-x": "-x" is not a valid tag/, /Give an image like/],
  [['podman', 'run', '--name', '', 'localhost/bb'], /invalid VM name "": it is empty/, NAME_RULE],
  [['podman', 'run', '--stop-timeout', '-1', 'localhost/bb'], /invalid --stop-timeout "-1"/, /Give --stop-timeout in seconds/],
  [['podman', 'run', '--boot-timeout', '0', 'localhost/bb'], /invalid --boot-timeout "0"/, /Give --boot-timeout in seconds/],
  [['podman', 'run', '--cpu', '0', 'localhost/bb'], /invalid --cpu "0": 0 is outside 1-32/, /Give a whole number of vCPUs/],
  [['podman', 'run', '--mem', '1T', 'localhost/bb'], /invalid --mem "1T": not a size/, /Give the guest memory in MiB/],
  [['podman', 'run', '--env', '=x', 'localhost/bb'], /invalid --env "=x": the variable name is empty/, /Use --env KEY=VALUE/],
  [['podman', 'run', '-p', '8080:80/sctp', 'localhost/bb'], /invalid --publish "8080:80\/sctp": unknown protocol "sctp"/, PUBLISH],
  [['podman', 'run', '-p', 'abc:80:80', 'localhost/bb'], /invalid --publish "abc:80:80": "abc" is not an IPv4 address/, PUBLISH],
  [['podman', 'run', '--health-check', 'http://', 'localhost/bb'], /invalid --health-check "http:\/\/": not a URL/, /Give an http:\/\/ URL/],
  [['podman', 'run', '--network', 'none', '-p', '1:1', 'localhost/bb'], /invalid --publish "1:1": a VM with --network none has no ports/, /Drop --publish/],
  // podman's volume spellings, the same engine as --map
  [['podman', 'run', '-v', '/data', 'localhost/bb'], /invalid --volume "\/data": an anonymous volume/, /Map a host directory: -v HOST-DIR:CONTAINER-DIR/],
  [['podman', 'run', '-v', 'cache:/data', 'localhost/bb'], /invalid --volume "cache:\/data": "cache" would be a named volume/, /Give a host directory/],
  [['podman', 'run', '-v', '/it-no-such-dir:/data', 'localhost/bb'], /invalid --volume "\/it-no-such-dir:\/data": host path \/it-no-such-dir: it does not exist/, /Create the directory first/],
  [['podman', 'run', '-v', '/tmp:/data:O', 'localhost/bb'], /invalid --volume "\/tmp:\/data:O": option "O" is not supported/, /Use -v HOST-DIR:CONTAINER-DIR\[:ro\]/],
  [['podman', 'run', '-v', '/tmp:/proc/x', 'localhost/bb'], /invalid --volume "\/tmp:\/proc\/x": \/proc\/x is over \/proc/, /Map the directory somewhere else/],
  [['podman', 'run', '--map', '/tmp:/x', '-v', '/tmp:/x', 'localhost/bb'], /invalid --volume "\/tmp:\/x": container path \/x is mapped twice/, /Give each container path one volume/],
  [['podman', 'run', '--mount', 'type=tmpfs,dst=/t', 'localhost/bb'], /invalid --mount "type=tmpfs,dst=\/t": type=tmpfs is not supported/, /Use --tmpfs \/t, which makes the same tmpfs/],
  [['podman', 'run', '--mount', 'type=bind,src=/tmp', 'localhost/bb'], /invalid --mount "type=bind,src=\/tmp": no target= given/, /Use --mount type=bind,source=/],
  // podman's other run flags
  [['podman', 'run', '-u', 'a b', 'localhost/bb'], /invalid --user "a b": not USER\[:GROUP\]/, /Give a name or ID/],
  [['podman', 'run', '--hostname', '-x', 'localhost/bb'], /invalid --hostname "-x": not a host name/, /For example --hostname web-1/],
  [['podman', 'run', '--pull', 'sometimes', 'localhost/bb'], /invalid --pull "sometimes": unknown value/, /Use one of: always, missing, never/],
  [['podman', 'run', '--seccomp-policy', 'image', 'localhost/bb'], /fcvm podman run does not take --seccomp-policy: /, /Leave it out/],
  [['podman', 'run', '--add-host', 'db.lan:10.0.0.999', 'localhost/bb'], /invalid --add-host "db\.lan:10\.0\.0\.999": not a value the guest's podman takes/, /For example --add-host db\.lan:10\.0\.0\.5/],
  [['podman', 'run', '--no-hosts', '--add-host', 'db.lan:10.0.0.5', 'localhost/bb'], /--no-hosts and --add-host were both given/, /Leave out one of them/],
  [['podman', 'run', '--tz', '../etc/shadow', 'localhost/bb'], /invalid --tz "\.\.\/etc\/shadow"/, /For example --tz Europe\/Paris/],
  [['podman', 'run', '--label-file', '/nonexistent/labels', 'localhost/bb'], /invalid --label-file "\/nonexistent\/labels": cannot read it/, /Give a readable file of KEY=VALUE lines/],
  [['podman', 'run', '--cap-add', 'NET ADMIN', 'localhost/bb'], /invalid --cap-add "NET ADMIN"/, /For example --cap-add NET_ADMIN/],
  [['podman', 'run', '--authfile', '/it/no/such.json', 'localhost/bb'], /invalid --authfile "\/it\/no\/such\.json": cannot read it/, /Give/],
  // lifecycle commands
  [['stop'], /no VM given/, /Usage: fcvm stop/],
  [['stop', 'it-nosuch'], /no running VM named "it-nosuch"/, /Run "fcvm ls"/],
  [['stop', '-t', 'soon', 'x'], /invalid --time "soon"/, /Give the grace period before SIGKILL/],
  [['stop', '--all', 'x'], /give VM names, --pid or --all, only one of them/, /Usage: fcvm stop/],
  [['logs', 'it-nosuch'], /no running VM named "it-nosuch", and no log of one/, /Run "fcvm ps -a"/],
  [['logs', '--tail', '-3', 'x'], /invalid --tail "-3"/, /Give a whole number/],
  [['logs', '--since', 'yesterday', 'x'], /invalid --since "yesterday": not a time/, /Give a duration back from now/],
  [['inspect', 'it-nosuch'], /no VM named "it-nosuch", running or ended with a kept log/, /Run "fcvm ps -a"/],
  [['inspect', '../x'], /invalid VM name "\.\.\/x"/, NAME_RULE],
  [['ps', '--filter', 'volume=bb'], /invalid --filter "volume=bb": unknown filter "volume"/, /Use --filter label=KEY/],
  [['ps', '-n', '0'], /invalid --last "0": not a whole number of at least 1/, /For example ps -n 3/],
  [['ps', '--filter', 'status=up'], /invalid --filter "status=up": unknown status "up"/, /Use one of: starting, running/],
  [['completion', 'tcsh'], /invalid shell "tcsh": unknown value/, /Use one of: bash, zsh, fish/],
];

test(`${cases.length} bad inputs each get one line that names the problem and says what to do, exit 125, and leave nothing`, async () => {
  assert.ok(cases.length >= 40);
  await fcvm(['ls']); // the base directory's skeleton, made by any command
  const before = filesOutsideRunDirs();
  for (const [args, names, todo] of cases) {
    const r = await fcvm(args, { env: { FCVM_BASE_DIR: layout.base } });
    const what = `fcvm ${args.join(' ')}`;
    const lines = r.stderr.trim().split('\n');
    assert.equal(r.exitCode, 125, `${what}: exit ${r.exitCode}\n${r.stderr}`);
    assert.equal(r.stdout, '', `${what}: nothing on stdout`);
    assert.equal(lines.length, 1, `${what}: one line expected, got:\n${r.stderr}`);
    assert.match(lines[0]!, /^fcvm: [^\n]+\. [A-Z][^\n]+$/, what);
    assert.match(lines[0]!, names, what);
    assert.match(lines[0]!, todo, what);
    assert.deepEqual(filesOutsideRunDirs(), before, `${what} left files behind`);
  }
  assertNoLeftovers();
});
