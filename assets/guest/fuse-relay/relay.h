/* fcvm-fuse-relay: the guest's end of fcvm volumes (see README, "Volumes").
 *
 * Each volume is a FUSE mount whose raw kernel messages travel, framed, over one byte
 * stream to the host's server (src/fuse/), which decodes, validates and answers them.
 * This process only moves bytes, keeps every request until its answer (to send it again
 * on a new host session, or answer EIO when the host is gone for good), and answers
 * a few requests from what the host told it (local.c, absent.c). It trusts the host: the host
 * does not trust it.
 *
 * Frames (src/fuse/channel-frames.ts): len u32 LE (header included), volume u16 LE,
 * kind u16 LE, then one whole FUSE message.
 */
#ifndef FCVM_RELAY_H
#define FCVM_RELAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_VOLUMES 64
#define FRAME_HEADER 8
/* A /dev/fuse read must hold a whole WRITE: 1 MiB of data plus headers. */
#define REQUEST_BUFFER ((1 << 20) + 4096)
#define MAX_FRAME (FRAME_HEADER + REQUEST_BUFFER)
/* virtio-serial takes at most 32 KiB per write(2) and gives at most one 4 KiB buffer per read. */
#define PORT_WRITE_MAX (32 * 1024)
#define PORT_READ_CHUNK 4096

enum frame_kind { KIND_MESSAGE = 0, KIND_HELLO = 1, KIND_ATTR = 2, KIND_EMPTY = 3 };
enum link_state { WAITING = 0, CONNECTED = 1, LOST = 2 };

/* A request kept until its answer: the whole frame, and the session it was sent in. */
struct pending {
  struct pending *next;
  uint64_t unique;
  uint16_t volume;
  uint32_t sent_gen; /* 0: not sent in any session yet */
  uint32_t len;
  uint8_t *frame;
};

struct hint;
struct absent;

struct volume {
  int index;
  int fd; /* /dev/fuse */
  int read_only;
  char mountpoint[256];
  pthread_t reader;
  /* Attribute hints from the host (local.c), by nodeid; under relay.lock. */
  struct hint **hints;
  size_t nhints;
  /* Directories whose every name the relay knows (absent.c); under relay.lock. */
  struct absent *absent;
  /* Nodeids that have had POSIX locks asked for: their FLUSH goes to the host. */
  uint64_t *locked;
  size_t nlocked;
  int lock_overflow;
};

struct stats {
  atomic_ulong forwarded[64], local[64], replies, notifies, hints, port_reads, port_bytes_in, port_bytes_out;
};

struct relay {
  int port;      /* the transport's descriptor, non-blocking */
  int is_port;   /* virtio-serial: a read of 0 means no host now; else end of stream */
  pthread_mutex_t wlock; /* whole frames to the transport; taken before lock */
  pthread_mutex_t lock;  /* state, gen, pending, hints */
  _Atomic int state;
  _Atomic uint32_t gen;
  _Atomic int armed;
  struct pending *pending[1024];
  struct volume *volumes[MAX_VOLUMES];
  struct stats stats;
};

extern struct relay R;

void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* main.c */
void widen_read_ahead(const char *mountpoint);

/* link.c */
void *downlink(void *);
int send_bytes(const uint8_t *buf, size_t len, uint32_t gen, int force);
void pending_add(struct pending *p);
struct pending *pending_take(uint16_t volume, uint64_t unique);
void reply_error(int fd, uint64_t unique, int err);
void *uplink(void *arg);

/* local.c */
int answer_locally(struct volume *v, const uint8_t *req, size_t len);
void note_request(struct volume *v, const uint8_t *req, size_t len);
void hint_put(struct volume *v, const uint8_t *body, size_t len);
void hint_drop(struct volume *v, uint64_t nodeid);
void hints_clear(struct volume *v);
void notified(struct volume *v, const uint8_t *msg, size_t len);

/* absent.c */
int absent_answer(struct volume *v, const uint8_t *req, size_t len);
void absent_empty_dir(struct volume *v, const uint8_t *body, size_t len);
void absent_replied(struct volume *v, const uint8_t *req, size_t len, int32_t error);
void absent_forget(struct volume *v, uint64_t nodeid);
void absent_clear(struct volume *v);

/* notify.c */
void notify_start(void);
void notify_push(int fd, const uint8_t *msg, size_t len);
/* Waits (bounded) until every note pushed so far is written to /dev/fuse. */
void notify_settle(void);

#endif
