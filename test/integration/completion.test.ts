import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CLI } from '../helpers.js';

/** Runs `script` in `shell` with `fcvm` as this checkout's CLI; skips loudly if the shell is not installed. */
function inShell(t: { name: string; skip: (why: string) => void }, shell: 'bash' | 'zsh' | 'fish', script: string): string | undefined {
  if (!existsSync(`/usr/bin/${shell}`)) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: needs /usr/bin/${shell} ***\n`);
    t.skip(`needs ${shell}`);
    return undefined;
  }
  const fcvm = shell === 'fish' ? `function fcvm; "${process.execPath}" -- "${CLI}" $argv; end` : `fcvm() { "${process.execPath}" -- "${CLI}" "$@"; }`;
  return execFileSync(shell, ['-c', `${fcvm}\n${script}`], { encoding: 'utf8' });
}

test('bash: commands, flags, choices, and ":" in the word under the cursor', (t) => {
  const out = inShell(t, 'bash', `eval "$(fcvm completion bash)"
    c() { COMP_LINE="$1"; COMP_POINT=\${#COMP_LINE}; COMPREPLY=(); _fcvm; echo "\${COMPREPLY[*]}"; }
    c "fcvm sto"; c "fcvm podman run --pu"; c "fcvm podman run --network "; c "fcvm logs --ta"; c "fcvm podman run --env-file /etc/host"; c "fcvm podman run -v /et"`);
  if (out === undefined) return;
  const lines = out.split('\n');
  assert.equal(lines[0], 'stop');
  assert.equal(lines[1], '--publish --publish-all --pull');
  assert.equal(lines[2], 'bridged none rootless');
  assert.equal(lines[3], '--tail');
  assert.match(lines[4]!, /\/etc\/hostname/, 'files are the shell\'s');
  assert.match(lines[5]!, /^\/etc\/?$/, '-v starts with a host directory');
});

test('zsh: the script loads and hands back candidates', (t) => {
  const out = inShell(t, 'zsh', `compdef() {}; compadd() { shift; print -l -- "$@" }; _files() { echo FILES }
    source <(fcvm completion zsh)
    words=(fcvm podman run --pu); CURRENT=4; _fcvm; words=(fcvm podman run --authfile ''); CURRENT=5; _fcvm`);
  if (out === undefined) return;
  assert.equal(out, '--publish\n--publish-all\n--pull\nFILES\n');
});

test('fish: the script loads and completes', (t) => {
  const out = inShell(t, 'fish', `fcvm completion fish | source; complete -C'fcvm podman run --pull '`);
  if (out === undefined) return;
  assert.equal(out, 'always\nmissing\nnever\n');
});
