import { errors } from '../errors/catalogue.js';

const DOMAIN = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]{1,5})?$/;
const PATH = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}$/;
const HINT = 'Give an image like localhost/NAME[:TAG] (from the host\'s podman storage) or docker.io/library/alpine:3.20';

/**
 * Checks an image reference against the OCI distribution grammar (the one podman
 * uses), so a malformed one is refused before a VM boots to pull it. Returns it as given.
 */
export function parseImageRef(value: string): string {
  const bad = (why: string) => errors.invalidOption('image', value, why, HINT);
  if (value.length > 255) throw bad('it is longer than 255 characters');
  let rest = value;
  const at = rest.indexOf('@');
  if (at >= 0) {
    if (!DIGEST.test(rest.slice(at + 1))) throw bad(`"${rest.slice(at + 1)}" is not a digest`);
    rest = rest.slice(0, at);
  }
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    const tag = rest.slice(colon + 1);
    if (!TAG.test(tag)) throw bad(`"${tag}" is not a valid tag`);
    rest = rest.slice(0, colon);
  }
  const parts = rest.split('/');
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!DOMAIN.test(first)) throw bad(`"${first}" is not a registry host`);
    parts.shift();
  }
  for (const p of parts) {
    if (PATH.test(p)) continue;
    if (PATH.test(p.toLowerCase())) throw bad('repository name must be lowercase');
    throw bad(p === '' ? 'it has an empty name component' : `"${p}" is not a valid name component`);
  }
  return value;
}
