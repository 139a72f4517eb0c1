/**
 * What the server tells the guest relay ahead of a reply, so that the relay can answer
 * later requests itself (assets/guest/fuse-relay/local.c and absent.c).
 */
export interface RelayHints {
  /** A file's attributes as they are after the request whose reply follows (FuseFrameKind.Attr). */
  attr(nodeid: bigint, attrOut: Buffer): void;
  /** A directory the request just made is empty and watched (FuseFrameKind.Empty). */
  emptyDir(nodeid: bigint, entrySeconds: number): void;
}

/** For a server with no guest relay to tell (tests). */
export const NO_HINTS: RelayHints = { attr() {}, emptyDir() {} };
