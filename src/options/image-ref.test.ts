import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseImageRef } from './image-ref.js';

test('well-formed references pass as given', () => {
  for (const r of ['localhost/bb', 'bb', 'alpine:3.20', 'docker.io/library/alpine:3.20', '127.0.0.1:5000/a/b-c_d:v1.2',
    'registry.example.com/x@sha256:' + 'a'.repeat(64), 'quay.io/podman/hello:latest', 'my__name/x', 'a--b']) {
    assert.equal(parseImageRef(r), r);
  }
});

test('malformed references name what is wrong', () => {
  const cases: Array<[string, RegExp]> = [
    ['UPPER/Case', /repository name must be lowercase/],
    ['localhost/', /empty name component/],
    ['a//b', /empty name component/],
    ['bb:', /"" is not a valid tag/],
    ['bb:-x', /"-x" is not a valid tag/],
    ['bb@sha256:xyz', /not a digest/],
    ['-bad', /"-bad" is not a valid name component/],
    ['a b', /"a b" is not a valid name component/],
    ['x'.repeat(300), /longer than 255/],
  ];
  for (const [ref, re] of cases) assert.throws(() => parseImageRef(ref), (e: Error) => re.test(e.message) && e.message.startsWith('invalid image'), ref);
});
