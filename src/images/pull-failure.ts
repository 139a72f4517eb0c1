import { registryOf } from '../options/registry-auth.js';

/** What the user gave for the pull, to tailor the hint. */
export interface PullContext {
  tlsVerify: boolean;
  hasCerts: boolean;
  hasAuth: boolean;
  /** Where the pull runs: a guest's network mode, or the host itself (a registry on its loopback). */
  network: 'bridged' | 'rootless' | 'none' | 'host';
}

interface Rule {
  re: RegExp;
  cause: (m: RegExpMatchArray) => string;
  hint: (c: PullContext, registry: string) => string;
}

const RULES: Rule[] = [
  {
    re: /server gave HTTP response to HTTPS client/,
    cause: () => 'it speaks plain HTTP, and TLS is required',
    hint: () => 'Add --tls-verify=false for a plain-HTTP registry',
  },
  {
    re: /x509: certificate signed by unknown authority|x509: .*unknown authority|certificate is not trusted/,
    cause: () => 'its TLS certificate is signed by an unknown authority',
    hint: (c) => (c.hasCerts ? 'The CA in --cert-dir did not sign it: check that the directory holds the registry\'s CA as ca.crt' : 'Give the registry\'s CA with --cert-dir DIR (DIR/ca.crt), or --tls-verify=false'),
  },
  {
    re: /x509: certificate is valid for ([^,]+(?:, [^,]+)*?), not (\S+)|x509: cannot validate certificate for (\S+) because it doesn't contain any IP SANs/,
    cause: () => 'its TLS certificate is for another name or address',
    hint: () => 'Use the name the certificate was made for, or --tls-verify=false',
  },
  {
    re: /x509: [^\n]*/,
    cause: (m) => `its TLS certificate was refused (${m[0].slice(0, 120)})`,
    hint: () => 'Check the registry\'s certificate, give its CA with --cert-dir DIR, or use --tls-verify=false',
  },
  {
    re: /unauthorized|authentication required|invalid username\/password|denied: requested access|\b401\b/i,
    cause: () => 'authentication required or refused',
    hint: (c) => (c.hasAuth ? 'Check the user and password given with --creds or --authfile' : 'Give --creds USER:PASSWORD, or --authfile FILE (podman\'s auth.json)'),
  },
  {
    re: /manifest unknown|name unknown|not found: manifest|repository .* not found|\b404\b/i,
    cause: () => 'no such image or tag there',
    hint: () => 'Check the image name and tag',
  },
  {
    re: /short-name "([^"]+)" did not resolve/,
    cause: (m) => `"${m[1]}" names no registry`,
    hint: () => 'Give the full name, for example docker.io/library/alpine:3.20',
  },
  {
    re: /connection refused/,
    cause: () => 'nothing listens there (connection refused)',
    hint: (c) => (c.network === 'host' ? 'Check that the registry runs on this host and its port is right'
      : `Check that the registry runs and its port is right; the guest reaches the host's loopback at ${c.network === 'rootless' ? '10.0.2.2' : '172.30.0.1'}`),
  },
  {
    re: /no such host|server misbehaving|Temporary failure in name resolution/,
    cause: () => 'its name does not resolve',
    hint: () => 'Check the name; the guest uses the host\'s resolvers',
  },
  {
    re: /network is unreachable|no route to host|i\/o timeout|TLS handshake timeout|context deadline exceeded/,
    cause: () => 'it cannot be reached from the VM',
    hint: (c) => (c.network === 'none' ? 'A VM with --network none cannot pull: use bridged or rootless, or put the image in the host\'s podman storage' : 'Check the host\'s network and that the registry is up'),
  },
];

/**
 * The one line for a failed pull: the registry, the cause as a user would say it, and
 * what to do, from podman's error (whose last line is `message`). Pure.
 */
export function describePullFailure(image: string, message: string, c: PullContext): { registry: string; cause: string; hint: string } {
  const registry = registryOf(image);
  for (const r of RULES) {
    const m = message.match(r.re);
    if (m) return { registry, cause: r.cause(m), hint: r.hint(c, registry) };
  }
  const tail = message.replace(/\s+/g, ' ').trim().slice(-200);
  return {
    registry,
    cause: tail || 'podman gave no reason',
    hint: c.network === 'none' ? 'A VM with --network none cannot pull: use bridged or rootless, or put the image in the host\'s podman storage'
      : c.network === 'host' ? 'Check the registry on this host and the image name, or try "podman pull" yourself'
        : 'Remote images are pulled by the guest; for local images use "localhost/NAME" from the host\'s podman storage',
  };
}
