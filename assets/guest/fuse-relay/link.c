/* The byte stream to the host, and the books of what waits for an answer.
 *
 * Uplink (one thread per volume): blocks in read(2) on the volume's /dev/fuse, answers
 * what it may itself (local.c), keeps the rest until answered, and writes each as one
 * frame while a host session is up.
 * Downlink (one thread): reads the stream in as few calls as the transport allows
 * (readv of whole 4 KiB buffers on virtio-serial), writes each reply to its volume's
 * /dev/fuse, stores attribute hints, hands notifications to the notifier thread, and
 * starts and ends sessions:
 *   - a Hello frame starts a session: every waiting request goes out again;
 *   - the host going away ends it: while armed (a snapshot is being taken) the relay
 *     waits for the next host; otherwise every waiting and later request gets EIO;
 *   - armed, SESSION_SYNC in the stream starts over (src/protocol/session-sync.ts): what
 *     came before it is dropped, and SYNC is answered.
 * Lock order: wlock before lock. Only the downlink frees kept requests.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

static const uint8_t SYNC[16] = {0x00, 0xfc, 0x56, 0x4d, '-', 'S', 'E', 'S', 'S', 'I', 'O', 'N', '-', 0xff, 0x5e, 0x11};

static size_t bucket(uint16_t volume, uint64_t unique) {
  return (size_t)((unique >> 1) * 31 + volume) % (sizeof R.pending / sizeof R.pending[0]);
}

void pending_add(struct pending *p) {
  size_t b = bucket(p->volume, p->unique);
  p->next = R.pending[b];
  R.pending[b] = p;
}

struct pending *pending_take(uint16_t volume, uint64_t unique) {
  for (struct pending **pp = &R.pending[bucket(volume, unique)]; *pp; pp = &(*pp)->next) {
    struct pending *p = *pp;
    if (p->unique == unique && p->volume == volume) {
      *pp = p->next;
      return p;
    }
  }
  return NULL;
}

static void pending_free(struct pending *p) {
  free(p->frame);
  free(p);
}

void reply_error(int fd, uint64_t unique, int err) {
  struct fuse_out_header h = {.len = sizeof h, .error = -err, .unique = unique};
  if (write(fd, &h, sizeof h) < 0) { /* ENOENT: the request was interrupted and is gone */ }
}

static uint64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/*
 * Writes `len` bytes to the transport (wlock held). Gives up, returning -1, when the
 * session `gen` is over (unless `force`), when the transport fails, or after 5 s of a
 * forced write going nowhere. A frame cut short that way belongs to a session that
 * has ended: the next one starts at SYNC or never comes.
 */
int send_bytes(const uint8_t *buf, size_t len, uint32_t gen, int force) {
  size_t off = 0;
  uint64_t t0 = force ? now_ms() : 0;
  while (off < len) {
    struct iovec iov[64];
    int n = 0;
    size_t at = off;
    size_t piece = R.is_port ? PORT_WRITE_MAX : len;
    while (at < len && n < 64) {
      size_t k = len - at < piece ? len - at : piece;
      iov[n].iov_base = (void *)(buf + at);
      iov[n].iov_len = k;
      at += k;
      n++;
    }
    ssize_t w = writev(R.port, iov, n);
    if (w > 0) {
      off += (size_t)w;
      atomic_fetch_add(&R.stats.port_bytes_out, (unsigned long)w);
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EINTR) return -1;
    if (!force && (atomic_load(&R.state) != CONNECTED || atomic_load(&R.gen) != gen)) return -1;
    if (force && now_ms() - t0 > 5000) return -1;
    struct pollfd p = {.fd = R.port, .events = POLLOUT};
    poll(&p, 1, 20);
  }
  return 0;
}

/* Requests the host never answers: forgets, and INTERRUPT (answered through its target). */
static int no_reply(uint32_t opcode) {
  return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT;
}

void *uplink(void *arg) {
  struct volume *v = arg;
  uint8_t *buf = malloc(MAX_FRAME);
  if (!buf) {
    logf_("volume %d: out of memory", v->index);
    return NULL;
  }
  for (;;) {
    ssize_t n = read(v->fd, buf + FRAME_HEADER, REQUEST_BUFFER);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ENOENT) continue;
      logf_("volume %d: /dev/fuse read ended (%s)", v->index, strerror(errno));
      break;
    }
    if ((size_t)n < sizeof(struct fuse_in_header)) continue;
    const struct fuse_in_header *in = (const void *)(buf + FRAME_HEADER);
    uint32_t opcode = in->opcode;
    if (answer_locally(v, buf + FRAME_HEADER, (size_t)n)) {
      atomic_fetch_add(&R.stats.local[opcode & 63], 1);
      continue;
    }
    atomic_fetch_add(&R.stats.forwarded[opcode & 63], 1);
    uint32_t len = (uint32_t)n + FRAME_HEADER;
    memcpy(buf, &len, 4);
    uint16_t vol = (uint16_t)v->index, kind = KIND_MESSAGE;
    memcpy(buf + 4, &vol, 2);
    memcpy(buf + 6, &kind, 2);
    int answered = !no_reply(opcode);

    /* Keep the frame: a big one keeps this buffer (no copy), a small one is copied. */
    uint8_t *frame = buf;
    if (len > 65536) {
      uint8_t *fresh = malloc(MAX_FRAME);
      if (!fresh) {
        reply_error(v->fd, in->unique, ENOMEM);
        continue;
      }
      buf = fresh;
    } else {
      frame = malloc(len);
      if (!frame) {
        if (answered) reply_error(v->fd, in->unique, ENOMEM);
        continue;
      }
      memcpy(frame, buf, len);
    }
    uint64_t unique = ((const struct fuse_in_header *)(frame + FRAME_HEADER))->unique;

    pthread_mutex_lock(&R.lock);
    note_request(v, frame + FRAME_HEADER, len - FRAME_HEADER);
    if (atomic_load(&R.state) == LOST) {
      pthread_mutex_unlock(&R.lock);
      if (answered) reply_error(v->fd, unique, EIO);
      free(frame);
      continue;
    }
    struct pending *p = NULL;
    if (answered) {
      p = calloc(1, sizeof *p);
      if (!p) {
        pthread_mutex_unlock(&R.lock);
        reply_error(v->fd, unique, ENOMEM);
        free(frame);
        continue;
      }
      *p = (struct pending){.unique = unique, .volume = vol, .len = len, .frame = frame};
      pending_add(p);
    }
    uint32_t gen = atomic_load(&R.gen);
    int send = atomic_load(&R.state) == CONNECTED;
    if (send && p) p->sent_gen = gen;
    pthread_mutex_unlock(&R.lock);
    if (!send) {
      if (!p) free(frame);
      continue;
    }
    pthread_mutex_lock(&R.wlock);
    /* A new session may have begun meanwhile, and sent this request itself. */
    pthread_mutex_lock(&R.lock);
    int still = atomic_load(&R.gen) == gen && atomic_load(&R.state) == CONNECTED && (!p || p->sent_gen == gen);
    pthread_mutex_unlock(&R.lock);
    if (still) send_bytes(frame, len, gen, 0);
    pthread_mutex_unlock(&R.wlock);
    if (!p) free(frame);
  }
  free(buf);
  return NULL;
}

/* A new host session: drop what the last host told, send every waiting request again. */
static void hello(void) {
  pthread_mutex_lock(&R.wlock);
  pthread_mutex_lock(&R.lock);
  uint32_t gen = atomic_fetch_add(&R.gen, 1) + 1;
  atomic_store(&R.state, CONNECTED);
  for (int i = 0; i < MAX_VOLUMES; i++) {
    if (!R.volumes[i]) continue;
    hints_clear(R.volumes[i]);
    absent_clear(R.volumes[i]);
  }
  for (size_t b = 0; b < sizeof R.pending / sizeof R.pending[0]; b++) {
    for (struct pending *p = R.pending[b]; p; p = p->next) {
      if (p->sent_gen == gen) continue;
      p->sent_gen = gen;
      if (send_bytes(p->frame, p->len, gen, 0) < 0) goto out;
    }
  }
out:
  pthread_mutex_unlock(&R.lock);
  pthread_mutex_unlock(&R.wlock);
}

/* The host went away. Armed (or before any session), it is only not there yet. */
static void hangup(void) {
  pthread_mutex_lock(&R.lock);
  if (atomic_load(&R.state) != CONNECTED) {
    pthread_mutex_unlock(&R.lock);
    return;
  }
  if (atomic_load(&R.armed)) {
    atomic_store(&R.state, WAITING);
    pthread_mutex_unlock(&R.lock);
    return;
  }
  atomic_store(&R.state, LOST);
  logf_("volume channel lost: answering EIO");
  for (size_t b = 0; b < sizeof R.pending / sizeof R.pending[0]; b++) {
    struct pending *p = R.pending[b];
    R.pending[b] = NULL;
    while (p) {
      struct pending *next = p->next;
      struct volume *v = R.volumes[p->volume];
      if (v) reply_error(v->fd, p->unique, EIO);
      pending_free(p);
      p = next;
    }
  }
  pthread_mutex_unlock(&R.lock);
}

/* Armed, the host wrote SYNC: a new session follows. Answer SYNC and wait for its hello. */
static void resync(void) {
  pthread_mutex_lock(&R.wlock);
  pthread_mutex_lock(&R.lock);
  atomic_store(&R.armed, 0);
  if (atomic_load(&R.state) != LOST) atomic_store(&R.state, WAITING);
  pthread_mutex_unlock(&R.lock);
  if (send_bytes(SYNC, sizeof SYNC, 0, 1) < 0) logf_("cannot answer SYNC");
  pthread_mutex_unlock(&R.wlock);
}

/* Replies after which the guest reads what a host process may have just written: the
 * host's notes of its changes, sent just before, go to the kernel first. After an
 * access ACL, the host's note drops the file's attributes, whose mode bits it changed. */
static int settles(uint32_t opcode) {
  return opcode == FUSE_OPEN || opcode == FUSE_SETLK || opcode == FUSE_SETLKW || opcode == FUSE_SETXATTR || opcode == FUSE_REMOVEXATTR;
}

static void deliver(uint16_t vol, uint16_t kind, const uint8_t *body, size_t len) {
  if (kind == KIND_HELLO) return hello();
  struct volume *v = vol < MAX_VOLUMES ? __atomic_load_n(&R.volumes[vol], __ATOMIC_ACQUIRE) : NULL;
  if (!v) return;
  if (kind == KIND_ATTR) {
    atomic_fetch_add(&R.stats.hints, 1);
    pthread_mutex_lock(&R.lock);
    hint_put(v, body, len);
    pthread_mutex_unlock(&R.lock);
    return;
  }
  if (kind == KIND_EMPTY) {
    pthread_mutex_lock(&R.lock);
    absent_empty_dir(v, body, len);
    pthread_mutex_unlock(&R.lock);
    return;
  }
  if (kind != KIND_MESSAGE || len < sizeof(struct fuse_out_header)) return;
  const struct fuse_out_header *out = (const void *)body;
  if (out->unique == 0) {
    atomic_fetch_add(&R.stats.notifies, 1);
    pthread_mutex_lock(&R.lock);
    notified(v, body, len);
    pthread_mutex_unlock(&R.lock);
    notify_push(v->fd, body, len);
    return;
  }
  atomic_fetch_add(&R.stats.replies, 1);
  pthread_mutex_lock(&R.lock);
  struct pending *p = pending_take(vol, out->unique);
  /* Before the kernel has the reply: the next LOOKUP in that directory may follow it. */
  if (p) absent_replied(v, p->frame + FRAME_HEADER, p->len - FRAME_HEADER, out->error);
  pthread_mutex_unlock(&R.lock);
  if (p && out->error == 0 && settles(((const struct fuse_in_header *)(p->frame + FRAME_HEADER))->opcode)) notify_settle();
  if (write(v->fd, body, len) < 0) { /* ENOENT: interrupted, gone */ }
  if (p && ((const struct fuse_in_header *)(p->frame + FRAME_HEADER))->opcode == FUSE_INIT) widen_read_ahead(v->mountpoint);
  if (p) pending_free(p);
}

void *downlink(void *arg) {
  (void)arg;
  size_t cap = 2 * (size_t)MAX_FRAME + 256 * 1024;
  uint8_t *in = malloc(cap);
  uint8_t tail[sizeof SYNC - 1];
  size_t start = 0, end = 0, tail_len = 0;
  if (!in) {
    logf_("downlink: out of memory");
    return NULL;
  }
  for (;;) {
    if (cap - end < 256 * 1024) {
      memmove(in, in + start, end - start);
      end -= start;
      start = 0;
    }
    ssize_t n;
    if (R.is_port) {
      /* Whole 4 KiB port buffers, many per call: readv goes on while each one fills. */
      struct iovec iov[64];
      int k = 0;
      for (; k < 64 && end + (size_t)(k + 1) * PORT_READ_CHUNK <= cap; k++) {
        iov[k].iov_base = in + end + (size_t)k * PORT_READ_CHUNK;
        iov[k].iov_len = PORT_READ_CHUNK;
      }
      n = readv(R.port, iov, k);
    } else {
      n = read(R.port, in + end, cap - end);
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd p = {.fd = R.port, .events = POLLIN};
      poll(&p, 1, -1);
      continue;
    }
    if (n <= 0) {
      hangup();
      start = end = tail_len = 0;
      if (!R.is_port) {
        logf_("volume channel: end of stream");
        break;
      }
      /* virtio-serial: no host is connected now; one may come. */
      usleep(10000);
      continue;
    }
    atomic_fetch_add(&R.stats.port_reads, 1);
    atomic_fetch_add(&R.stats.port_bytes_in, (unsigned long)n);
    size_t fresh = end;
    end += (size_t)n;
    if (atomic_load(&R.armed)) {
      /* SYNC may straddle the last read: look in the kept tail too. */
      uint8_t edge[2 * sizeof SYNC];
      size_t head = end - fresh < sizeof SYNC - 1 ? end - fresh : sizeof SYNC - 1;
      memcpy(edge, tail, tail_len);
      memcpy(edge + tail_len, in + fresh, head);
      uint8_t *hit = memmem(edge, tail_len + head, SYNC, sizeof SYNC);
      size_t after = 0;
      if (hit) after = fresh + (size_t)(hit - edge) + sizeof SYNC - tail_len;
      else if ((hit = memmem(in + fresh, end - fresh, SYNC, sizeof SYNC))) after = (size_t)(hit - in) + sizeof SYNC;
      if (hit) {
        start = after;
        tail_len = 0;
        resync();
      } else if (end - fresh >= sizeof tail) {
        memcpy(tail, in + end - sizeof tail, sizeof tail);
        tail_len = sizeof tail;
      } else {
        /* The last bytes of the stream, whether or not frames consumed them. */
        size_t nn = end - fresh, old = tail_len < sizeof tail - nn ? tail_len : sizeof tail - nn;
        memmove(tail, tail + tail_len - old, old);
        memcpy(tail + old, in + fresh, nn);
        tail_len = old + nn;
      }
    } else {
      tail_len = 0;
    }
    while (end - start >= FRAME_HEADER) {
      uint32_t len;
      uint16_t vol, kind;
      memcpy(&len, in + start, 4);
      memcpy(&vol, in + start + 4, 2);
      memcpy(&kind, in + start + 6, 2);
      if (len < FRAME_HEADER || len > MAX_FRAME) {
        logf_("volume channel: frame length %u, dropping %zu bytes", len, end - start);
        start = end;
        break;
      }
      if (end - start < len) break;
      deliver(vol, kind, in + start + FRAME_HEADER, len - FRAME_HEADER);
      start += len;
    }
    if (start == end) start = end = 0;
  }
  free(in);
  return NULL;
}
