/* Host notifications (FUSE_NOTIFY_INVAL_INODE, INVAL_ENTRY, DELETE) go to /dev/fuse from
 * their own thread: writing one may wait for page and directory locks that only a reply
 * releases, and replies come from the downlink. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

struct note {
  struct note *next;
  int fd;
  size_t len;
  uint8_t msg[];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct note *head, *tail;

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
  }
  return NULL;
}

void notify_start(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, notifier, NULL) != 0) logf_("cannot start the notifier thread");
  else pthread_detach(t);
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
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
}
