/* Host notifications (FUSE_NOTIFY_INVAL_INODE, INVAL_ENTRY, DELETE) go to /dev/fuse from
 * their own thread: writing one may wait for page and directory locks that only a reply
 * releases, and replies come from the downlink.
 *
 * A reply that grants a lock or opens a file waits (notify_settle) until the notes sent
 * before it are written: the host sends what changed on its side just before such a
 * reply, so a guest process that takes a lock (or opens the file) after a host process
 * wrote and unlocked it reads the host's data, never its own stale pages. The wait is
 * bounded: a note that waits for a reply queued behind this one is written once that
 * reply is, so after NOTIFY_SETTLE_MS the reply goes anyway. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

struct note {
  struct note *next;
  int fd;
  size_t len;
  uint8_t msg[];
};

#define NOTIFY_SETTLE_MS 200

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t written_cv;
static struct note *head, *tail;
/* Notes queued, and notes written to /dev/fuse (in queue order: one writer). */
static unsigned long pushed, written;
/* Without its thread no note is written: nothing to wait for. */
static int notifier_running;

static void *notifier(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&mu);
    while (!head) pthread_cond_wait(&cv, &mu);
    struct note *n = head;
    head = n->next;
    if (!head) tail = NULL;
    pthread_mutex_unlock(&mu);
    /* ENOENT: the kernel does not know the node (any more); nothing to drop. */
    if (write(n->fd, n->msg, n->len) < 0) { }
    free(n);
    pthread_mutex_lock(&mu);
    written++;
    pthread_cond_broadcast(&written_cv);
    pthread_mutex_unlock(&mu);
  }
  return NULL;
}

void notify_settle(void) {
  pthread_mutex_lock(&mu);
  unsigned long target = pushed;
  if (notifier_running && written < target) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)NOTIFY_SETTLE_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    while (written < target) {
      if (pthread_cond_timedwait(&written_cv, &mu, &until) == ETIMEDOUT) {
        logf_("a host notification took over %d ms; a reply went ahead of it", NOTIFY_SETTLE_MS);
        break;
      }
    }
  }
  pthread_mutex_unlock(&mu);
}

void notify_start(void) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&written_cv, &a);
  pthread_condattr_destroy(&a);
  pthread_t t;
  if (pthread_create(&t, NULL, notifier, NULL) != 0) logf_("cannot start the notifier thread");
  else {
    pthread_detach(t);
    pthread_mutex_lock(&mu);
    notifier_running = 1;
    pthread_mutex_unlock(&mu);
  }
}

void notify_push(int fd, const uint8_t *msg, size_t len) {
  struct note *n = malloc(sizeof *n + len);
  if (!n) {
    logf_("out of memory: a host notification is lost");
    return;
  }
  n->next = NULL;
  n->fd = fd;
  n->len = len;
  memcpy(n->msg, msg, len);
  pthread_mutex_lock(&mu);
  if (tail) tail->next = n;
  else head = n;
  tail = n;
  pushed++;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
}
