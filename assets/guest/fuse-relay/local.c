/* What the relay answers itself, from what the host told it, without a round trip
 * (and, in absent.c, the LOOKUP of a name it knows is not there):
 *
 *   GETATTR of a file the host sent an attribute hint for. After each WRITE, and after
 *     each request that adds or removes a name in a directory (for that directory), the
 *     host sends the attributes as they are once it is done, just before the reply. The
 *     guest kernel drops its own cached attributes on such replies (fs/fuse/file.c,
 *     fuse_write_update_attr; fs/fuse/dir.c, fuse_dir_changed), so the next stat(2), or
 *     the permission check of the next path walk through the directory, would
 *     otherwise wait for the host. A hint is as fresh as a host answer given when it was
 *     sent, and it is dropped by anything that could make it stale: a request that may
 *     change the file (note_request), a host notification about it, a new session, its
 *     timeout (the host's attribute timeout).
 *   GETXATTR "security.capability", which the kernel asks before every first write to a
 *     file: the host never shows that attribute (a volume's file capabilities do not
 *     apply in the guest), so the answer is always ENODATA.
 *   FLUSH (every close(2)) of a file no POSIX lock was ever asked for: the host's FLUSH
 *     only drops the closing owner's POSIX locks.
 * Everything here runs under R.lock except the replies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define HINT_BUCKETS 4096
#define MAX_HINTS 65536
#define MAX_LOCKED 4096

struct hint {
  struct hint *next;
  uint64_t nodeid;
  uint64_t expires_ns;
  struct fuse_attr_out attr;
};

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static struct hint **slot(struct volume *v, uint64_t nodeid) {
  for (struct hint **h = &v->hints[nodeid % HINT_BUCKETS]; *h; h = &(*h)->next)
    if ((*h)->nodeid == nodeid) return h;
  return NULL;
}

void hint_drop(struct volume *v, uint64_t nodeid) {
  if (!v->hints || v->nhints == 0) return;
  struct hint **h = slot(v, nodeid);
  if (!h) return;
  struct hint *gone = *h;
  *h = gone->next;
  free(gone);
  v->nhints--;
}

void hints_clear(struct volume *v) {
  if (!v->hints) return;
  for (size_t b = 0; b < HINT_BUCKETS && v->nhints > 0; b++) {
    while (v->hints[b]) {
      struct hint *h = v->hints[b];
      v->hints[b] = h->next;
      free(h);
      v->nhints--;
    }
  }
  v->nhints = 0;
}

/* An ATTR frame: nodeid u64, then a fuse_attr_out with the host's attribute timeout. */
void hint_put(struct volume *v, const uint8_t *body, size_t len) {
  if (len != 8 + sizeof(struct fuse_attr_out)) return;
  if (!v->hints && !(v->hints = calloc(HINT_BUCKETS, sizeof *v->hints))) return;
  uint64_t nodeid;
  memcpy(&nodeid, body, 8);
  struct hint **at = slot(v, nodeid);
  struct hint *h = at ? *at : NULL;
  if (!h) {
    if (v->nhints >= MAX_HINTS) hints_clear(v);
    if (!(h = calloc(1, sizeof *h))) return;
    h->nodeid = nodeid;
    h->next = v->hints[nodeid % HINT_BUCKETS];
    v->hints[nodeid % HINT_BUCKETS] = h;
    v->nhints++;
  }
  memcpy(&h->attr, body + 8, sizeof h->attr);
  uint64_t valid = h->attr.attr_valid > 86400 * 365 ? 86400ull * 365 : h->attr.attr_valid;
  h->expires_ns = now_ns() + valid * 1000000000u + (h->attr.attr_valid_nsec % 1000000000u);
}

static int locked_seen(struct volume *v, uint64_t nodeid) {
  if (v->lock_overflow) return 1;
  for (size_t i = 0; i < v->nlocked; i++)
    if (v->locked[i] == nodeid) return 1;
  return 0;
}

static void locked_add(struct volume *v, uint64_t nodeid) {
  if (locked_seen(v, nodeid)) return;
  if (v->nlocked == MAX_LOCKED) {
    v->lock_overflow = 1;
    return;
  }
  if (!v->locked && !(v->locked = malloc(MAX_LOCKED * sizeof *v->locked))) {
    v->lock_overflow = 1;
    return;
  }
  v->locked[v->nlocked++] = nodeid;
}

/* Requests that change no file's attributes (LOOKUP and the like name a directory). */
static int harmless(uint32_t op) {
  switch (op) {
  case FUSE_LOOKUP: case FUSE_GETATTR: case FUSE_READLINK: case FUSE_READ: case FUSE_STATFS:
  case FUSE_RELEASE: case FUSE_FSYNC: case FUSE_GETXATTR: case FUSE_LISTXATTR: case FUSE_FLUSH:
  case FUSE_INIT: case FUSE_OPENDIR: case FUSE_READDIR: case FUSE_RELEASEDIR: case FUSE_FSYNCDIR:
  case FUSE_GETLK: case FUSE_ACCESS: case FUSE_INTERRUPT: case FUSE_BMAP: case FUSE_DESTROY:
  case FUSE_POLL: case FUSE_READDIRPLUS: case FUSE_LSEEK: case FUSE_SYNCFS:
    return 1;
  default:
    return 0;
  }
}

/* A request is on its way to the host: forget hints it may make stale; note POSIX locks. */
void note_request(struct volume *v, const uint8_t *req, size_t len) {
  const struct fuse_in_header *in = (const void *)req;
  const uint8_t *arg = req + sizeof *in;
  size_t alen = len - sizeof *in;
  switch (in->opcode) {
  case FUSE_SETLK:
  case FUSE_SETLKW:
    if (alen >= sizeof(struct fuse_lk_in) && !(((const struct fuse_lk_in *)arg)->lk_flags & FUSE_LK_FLOCK)) locked_add(v, in->nodeid);
    return;
  case FUSE_OPEN:
    if (alen >= sizeof(struct fuse_open_in) && (((const struct fuse_open_in *)arg)->flags & O_TRUNC)) hint_drop(v, in->nodeid);
    return;
  case FUSE_LINK:
    if (alen >= sizeof(struct fuse_link_in)) hint_drop(v, ((const struct fuse_link_in *)arg)->oldnodeid);
    return;
  case FUSE_COPY_FILE_RANGE:
    if (alen >= sizeof(struct fuse_copy_file_range_in)) hint_drop(v, ((const struct fuse_copy_file_range_in *)arg)->nodeid_out);
    return;
  case FUSE_FORGET:
    hint_drop(v, in->nodeid);
    absent_forget(v, in->nodeid);
    return;
  case FUSE_BATCH_FORGET: {
    if (alen < sizeof(struct fuse_batch_forget_in)) return;
    uint32_t count = ((const struct fuse_batch_forget_in *)arg)->count;
    const struct fuse_forget_one *one = (const void *)(arg + sizeof(struct fuse_batch_forget_in));
    for (uint32_t i = 0; i < count && (const uint8_t *)(one + i + 1) <= req + len; i++) {
      hint_drop(v, one[i].nodeid);
      absent_forget(v, one[i].nodeid);
    }
    return;
  }
  case FUSE_UNLINK: case FUSE_RMDIR: case FUSE_RENAME: case FUSE_RENAME2:
    /* Another name of a file changes its link count and ctime: which file, only the host knows. */
    hints_clear(v);
    return;
  default:
    if (!harmless(in->opcode)) hint_drop(v, in->nodeid);
  }
}

/* A notification from the host: whatever it names is no longer as hinted. */
void notified(struct volume *v, const uint8_t *msg, size_t len) {
  const struct fuse_out_header *out = (const void *)msg;
  const uint8_t *arg = msg + sizeof *out;
  size_t alen = len - sizeof *out;
  if (out->error == FUSE_NOTIFY_INVAL_INODE && alen >= sizeof(struct fuse_notify_inval_inode_out)) {
    hint_drop(v, ((const struct fuse_notify_inval_inode_out *)arg)->ino);
    absent_forget(v, ((const struct fuse_notify_inval_inode_out *)arg)->ino);
  } else if (out->error == FUSE_NOTIFY_INVAL_ENTRY && alen >= sizeof(struct fuse_notify_inval_entry_out)) {
    absent_forget(v, ((const struct fuse_notify_inval_entry_out *)arg)->parent);
  } else if (out->error == FUSE_NOTIFY_DELETE && alen >= sizeof(struct fuse_notify_delete_out)) {
    hint_drop(v, ((const struct fuse_notify_delete_out *)arg)->child);
    absent_forget(v, ((const struct fuse_notify_delete_out *)arg)->parent);
    absent_forget(v, ((const struct fuse_notify_delete_out *)arg)->child);
  }
}

static void reply(int fd, uint64_t unique, const void *body, size_t n) {
  uint8_t buf[sizeof(struct fuse_out_header) + sizeof(struct fuse_attr_out)];
  struct fuse_out_header h = {.len = (uint32_t)(sizeof h + n), .error = 0, .unique = unique};
  memcpy(buf, &h, sizeof h);
  if (n) memcpy(buf + sizeof h, body, n);
  if (write(fd, buf, sizeof h + n) < 0) { /* ENOENT: interrupted, gone */ }
}

int answer_locally(struct volume *v, const uint8_t *req, size_t len) {
  const struct fuse_in_header *in = (const void *)req;
  const uint8_t *arg = req + sizeof *in;
  size_t alen = len - sizeof *in;
  switch (in->opcode) {
  case FUSE_LOOKUP: {
    pthread_mutex_lock(&R.lock);
    int done = absent_answer(v, req, len);
    pthread_mutex_unlock(&R.lock);
    return done;
  }
  case FUSE_GETATTR: {
    struct fuse_attr_out a;
    int have = 0;
    pthread_mutex_lock(&R.lock);
    struct hint **h = atomic_load(&R.state) == CONNECTED && v->hints ? slot(v, in->nodeid) : NULL;
    uint64_t now = now_ns();
    if (h && (*h)->expires_ns > now) {
      a = (*h)->attr;
      uint64_t left = (*h)->expires_ns - now;
      a.attr_valid = left / 1000000000u;
      a.attr_valid_nsec = (uint32_t)(left % 1000000000u);
      have = 1;
    }
    pthread_mutex_unlock(&R.lock);
    if (have) reply(v->fd, in->unique, &a, sizeof a);
    return have;
  }
  case FUSE_GETXATTR: {
    static const char cap[] = "security.capability";
    if (alen < sizeof(struct fuse_getxattr_in) + sizeof cap) return 0;
    if (memcmp(arg + sizeof(struct fuse_getxattr_in), cap, sizeof cap) != 0) return 0;
    reply_error(v->fd, in->unique, ENODATA);
    return 1;
  }
  case FUSE_FLUSH: {
    pthread_mutex_lock(&R.lock);
    int forward = locked_seen(v, in->nodeid) || atomic_load(&R.state) == LOST;
    pthread_mutex_unlock(&R.lock);
    if (forward) return 0;
    reply(v->fd, in->unique, NULL, 0);
    return 1;
  }
  default:
    return 0;
  }
}
