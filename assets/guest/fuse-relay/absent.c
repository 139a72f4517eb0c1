/* Names the relay knows are absent: the LOOKUP before every create, answered here.
 *
 * The kernel looks a name up before it creates it (fs/fuse/dir.c, fuse_atomic_open), so
 * creating a file costs a round trip to the host just to hear "no such name". For a
 * directory whose every name the relay knows, it answers that LOOKUP itself with a
 * negative entry, as the host would.
 *
 * A directory becomes known when the host says so (KIND_EMPTY, ahead of the reply to the
 * MKDIR that made it): it is empty, its host changes are watched, and its file system
 * tells names apart byte for byte (no case folding: names compare here with memcmp).
 * From then on the
 * relay keeps its names from the replies it relays: a successful CREATE, MKNOD, MKDIR,
 * SYMLINK or LINK adds one, UNLINK and RMDIR remove one, RENAME moves one. The guest
 * kernel changes a directory's names only under that directory's exclusive lock, and
 * looks names up under the shared one, so no LOOKUP in it runs while its names change.
 * The directory is forgotten (its LOOKUPs go to the host again) on anything the relay
 * cannot follow exactly: a host notification about it or any name in it (a change on
 * the host side), a failed name change in it, a FORGET of it, a new session, too many
 * names, or the host's entry timeout since the host said it was empty. The answer is
 * as fresh as the host's own: a host change reaches the relay before the kernel.
 * Everything here runs under R.lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define RENAME_EXCHANGE_FLAG (1u << 1)
#define RENAME_WHITEOUT_FLAG (1u << 2)
#define MAX_DIRS 256
#define NAME_BUCKETS 256
#define MAX_NAMES 16384

struct name {
  struct name *next;
  uint32_t hash, len;
  char s[];
};

struct known_dir {
  uint64_t nodeid; /* 0: a free slot */
  uint64_t expires_ns;
  uint32_t entry_valid; /* seconds, the host's entry timeout */
  size_t nnames;
  struct name *names[NAME_BUCKETS];
};

struct absent {
  struct known_dir dirs[MAX_DIRS];
};

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint32_t hash(const char *s, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

static struct known_dir *find(struct volume *v, uint64_t nodeid) {
  if (!v->absent || nodeid == 0) return NULL;
  struct known_dir *d = &v->absent->dirs[nodeid % MAX_DIRS];
  return d->nodeid == nodeid ? d : NULL;
}

static void forget_dir(struct known_dir *d) {
  for (size_t b = 0; b < NAME_BUCKETS; b++) {
    while (d->names[b]) {
      struct name *n = d->names[b];
      d->names[b] = n->next;
      free(n);
    }
  }
  memset(d, 0, sizeof *d);
}

void absent_forget(struct volume *v, uint64_t nodeid) {
  struct known_dir *d = find(v, nodeid);
  if (d) forget_dir(d);
}

void absent_clear(struct volume *v) {
  if (!v->absent) return;
  for (size_t i = 0; i < MAX_DIRS; i++)
    if (v->absent->dirs[i].nodeid) forget_dir(&v->absent->dirs[i]);
}

/* A KIND_EMPTY frame: nodeid u64, entry timeout u32 (seconds). */
void absent_empty_dir(struct volume *v, const uint8_t *body, size_t len) {
  uint64_t nodeid;
  uint32_t valid;
  if (len != 12) return;
  memcpy(&nodeid, body, 8);
  memcpy(&valid, body + 8, 4);
  if (nodeid == 0 || valid == 0) return;
  if (!v->absent && !(v->absent = calloc(1, sizeof *v->absent))) return;
  struct known_dir *d = &v->absent->dirs[nodeid % MAX_DIRS];
  if (d->nodeid) forget_dir(d); /* the slot's last directory is only forgotten, never wrong */
  d->nodeid = nodeid;
  d->entry_valid = valid > 86400 ? 86400 : valid;
  d->expires_ns = now_ns() + (uint64_t)d->entry_valid * 1000000000u;
}

/* A request's name argument: NUL-terminated, within the request. */
static int name_at(const uint8_t *p, const uint8_t *end, const char **s, size_t *len) {
  if (p >= end) return 0;
  const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
  if (!nul || nul == p) return 0;
  *s = (const char *)p;
  *len = (size_t)(nul - p);
  return 1;
}

static struct name **lookup_name(struct known_dir *d, const char *s, size_t len, uint32_t h) {
  for (struct name **n = &d->names[h % NAME_BUCKETS]; *n; n = &(*n)->next)
    if ((*n)->hash == h && (*n)->len == len && !memcmp((*n)->s, s, len)) return n;
  return NULL;
}

static void add_name(struct known_dir *d, const char *s, size_t len) {
  uint32_t h = hash(s, len);
  if (lookup_name(d, s, len, h)) return;
  struct name *n = d->nnames < MAX_NAMES ? malloc(sizeof *n + len) : NULL;
  if (!n) return forget_dir(d);
  n->hash = h;
  n->len = (uint32_t)len;
  memcpy(n->s, s, len);
  n->next = d->names[h % NAME_BUCKETS];
  d->names[h % NAME_BUCKETS] = n;
  d->nnames++;
}

static void remove_name(struct known_dir *d, const char *s, size_t len) {
  struct name **n = lookup_name(d, s, len, hash(s, len));
  if (!n) return forget_dir(d); /* a name the relay did not know of: it knows too little */
  struct name *gone = *n;
  *n = gone->next;
  free(gone);
  d->nnames--;
}

/* Where a name-changing request's name starts, after its fixed argument. */
static size_t name_offset(uint32_t opcode) {
  switch (opcode) {
  case FUSE_CREATE: return sizeof(struct fuse_create_in);
  case FUSE_MKNOD: return sizeof(struct fuse_mknod_in);
  case FUSE_MKDIR: return sizeof(struct fuse_mkdir_in);
  case FUSE_LINK: return sizeof(struct fuse_link_in);
  case FUSE_SYMLINK: case FUSE_UNLINK: case FUSE_RMDIR: return 0;
  case FUSE_RENAME: return sizeof(struct fuse_rename_in);
  case FUSE_RENAME2: return sizeof(struct fuse_rename2_in);
  default: return (size_t)-1;
  }
}

/* The reply to `req` (a kept request) is on its way to the kernel: follow its names. */
void absent_replied(struct volume *v, const uint8_t *req, size_t len, int32_t error) {
  if (!v->absent) return;
  const struct fuse_in_header *in = (const void *)req;
  size_t off = name_offset(in->opcode);
  if (off == (size_t)-1) return;
  const uint8_t *end = req + len, *arg = req + sizeof *in;
  struct known_dir *d = find(v, in->nodeid);
  struct known_dir *to = NULL;
  if (in->opcode == FUSE_RENAME || in->opcode == FUSE_RENAME2) to = find(v, ((const struct fuse_rename_in *)arg)->newdir);
  if (!d && !to) return;
  const char *s, *s2;
  size_t n, n2;
  int named = (size_t)(end - arg) >= off && name_at(arg + off, end, &s, &n);
  if (error != 0 || !named) {
    /* A failed change in a known directory: it may know less than the host does. */
    if (d) forget_dir(d);
    if (to) forget_dir(to);
    return;
  }
  switch (in->opcode) {
  case FUSE_UNLINK: case FUSE_RMDIR:
    return remove_name(d, s, n);
  case FUSE_RENAME: case FUSE_RENAME2: {
    uint32_t flags = in->opcode == FUSE_RENAME2 ? ((const struct fuse_rename2_in *)arg)->flags : 0;
    if (!name_at((const uint8_t *)s + n + 1, end, &s2, &n2)) {
      if (d) forget_dir(d);
      if (to) forget_dir(to);
      return;
    }
    if (flags & RENAME_EXCHANGE_FLAG) return; /* both names were there and stay */
    if (d && (flags & RENAME_WHITEOUT_FLAG)) forget_dir(d); /* the old name stays, as a whiteout */
    else if (d) remove_name(d, s, n);
    if ((to = find(v, ((const struct fuse_rename_in *)arg)->newdir))) add_name(to, s2, n2);
    return;
  }
  default:
    return add_name(d, s, n);
  }
}

/* LOOKUP of a name the relay knows is absent: a negative entry, as the host gives. */
int absent_answer(struct volume *v, const uint8_t *req, size_t len) {
  const struct fuse_in_header *in = (const void *)req;
  struct known_dir *d = find(v, in->nodeid);
  const char *s;
  size_t n;
  uint64_t now = now_ns();
  if (!d || atomic_load(&R.state) != CONNECTED) return 0;
  if (now >= d->expires_ns) {
    forget_dir(d);
    return 0;
  }
  /* Only names the host would look up; it answers the rest with their error (ENAMETOOLONG...). */
  if (!name_at(req + sizeof *in, req + len, &s, &n) || n > 255 || memchr(s, '/', n) || (n <= 2 && s[0] == '.' && (n == 1 || s[1] == '.'))) return 0;
  if (lookup_name(d, s, n, hash(s, n))) return 0;
  struct {
    struct fuse_out_header h;
    struct fuse_entry_out e;
  } out;
  memset(&out, 0, sizeof out);
  out.h.len = sizeof out;
  out.h.unique = in->unique;
  out.e.entry_valid = (d->expires_ns - now) / 1000000000u;
  out.e.entry_valid_nsec = (uint32_t)((d->expires_ns - now) % 1000000000u);
  if (write(v->fd, &out, sizeof out) < 0) { /* ENOENT: interrupted, gone */ }
  return 1;
}
