import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runOptionsFromFlags } from '../options/run-options.js';
import { layoutFor } from '../setup/layout.js';
import { runRecord } from './plan-record.js';
import { decodeJob, encodeJob } from './detach.js';

const secret = 'pw-that-must-not-leak';

test('the state file\'s record of a run has no credentials and no environment values', () => {
  const o = runOptionsFromFlags('reg:5000/app:1', ['sh'], {
    name: 'web', env: [`TOKEN=${secret}`], creds: `u:${secret}`, tlsVerify: 'false', label: ['team=a'], detach: true, workdir: '/w',
  }, {}, { certDir: { path: '/ca', files: [{ name: 'ca.crt', pem: 'PEM' }] } });
  const rec = runRecord(o, layoutFor('/b'), 'ab-1-2');
  const text = JSON.stringify(rec);
  assert.ok(!text.includes(secret) && !text.includes(Buffer.from(`u:${secret}`).toString('base64')), text);
  assert.ok(!text.includes('PEM'));
  assert.deepEqual(rec.plan?.envNames, ['TOKEN']);
  assert.deepEqual(rec.plan?.pull, { policy: 'missing', tlsVerify: false, certDir: '/ca', credentials: 'creds' });
  assert.deepEqual(rec.labels, { team: 'a' });
  assert.deepEqual(rec.log, { path: '/b/logs/web.ab-1-2.log', keep: true });
  assert.equal(runRecord({ ...o, rm: true }, layoutFor('/b'), 'ab-1-2').log?.keep, false, '-d --rm: the log goes with the VM');
});

test('an ended VM is kept as podman keeps an exited container: a podman run or a detached run, never with --rm', () => {
  const keep = (detach: boolean, rm: boolean, keepEnded: boolean) =>
    runRecord(runOptionsFromFlags('img', [], { name: 'web', detach, rm }, {}), layoutFor('/b'), 'ab-1-2', keepEnded).log?.keep;
  assert.equal(keep(false, false, true), true, 'a foreground podman run');
  assert.equal(keep(false, true, true), false, 'podman run --rm');
  assert.equal(keep(true, false, false), true, 'a detached clone');
  assert.equal(keep(false, false, false), false, 'a foreground clone, or prepare\'s VM');
});

test('a detached job crosses its IPC pipe intact, health-check URL included', () => {
  const opts = runOptionsFromFlags('img', [], { name: 'web', healthCheck: 'http://localhost:8080/h', detach: true }, {});
  const back = decodeJob(JSON.parse(JSON.stringify(encodeJob({ kind: 'run', opts }))));
  assert.equal(back.kind, 'run');
  if (back.kind !== 'run') return;
  assert.ok(back.opts.healthCheck?.url instanceof URL);
  assert.equal(back.opts.healthCheck?.url.href, 'http://localhost:8080/h');
  const plain = (o: object) => JSON.parse(JSON.stringify({ ...o, healthCheck: undefined }));
  assert.deepEqual(plain(back.opts), plain(opts));
  assert.throws(() => decodeJob({}), /no job/);
});
