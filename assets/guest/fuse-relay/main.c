/* fcvm-fuse-relay: see relay.h. Started by the guest agent with the first volume:
 *
 *   fuse-relay --port /dev/vportNpM      the fuse channel's virtio-serial port (QEMU)
 *   fuse-relay --fd N                    a stream socket the agent carries (vsock; tests)
 *
 * The agent drives it with lines on stdin, each answered on stdout:
 *   mount INDEX RO MOUNTPOINT   -> "ok INDEX" | "error INDEX MESSAGE"
 *   arm | disarm                -> "armed" | "disarmed"   (a snapshot is being taken)
 *   stats                       -> "stats NAME=VALUE ..."
 * Log lines go to stderr. When stdin ends (the agent is gone), the volumes are unmounted
 * and the relay exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay.h"

struct relay R = {.wlock = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER};

void logf_(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "fuse-relay: %s\n", line);
}

static int mkdirs(const char *path) {
  char p[256];
  if (strlen(path) >= sizeof p) return -1;
  strcpy(p, path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0755) < 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  return mkdir(p, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/*
 * A FUSE mount's read-ahead starts at 128 KiB (the bdi default, which the INIT reply
 * can only lower): sequential reads would then wait one round trip per 128 KiB. A
 * window of READ_AHEAD_KB lets the kernel keep several 1 MiB READs in flight
 * (ASYNC_READ). Called once the INIT reply is written (the kernel applies it within
 * that write). The bdi of a FUSE mount is named after its device number.
 */
#define READ_AHEAD_KB 8192

void widen_read_ahead(const char *mountpoint) {
  struct statx st;
  char path[96], val[16];
  /* DONT_SYNC: the device number only, without a request the host may not answer yet. */
  if (statx(AT_FDCWD, mountpoint, AT_STATX_DONT_SYNC, STATX_TYPE, &st) < 0) return;
  snprintf(path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb", st.stx_dev_major, st.stx_dev_minor);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  int n = snprintf(val, sizeof val, "%d", READ_AHEAD_KB);
  if (fd < 0 || write(fd, val, (size_t)n) != n) logf_("cannot set %s: %s (sequential reads stay slow)", path, strerror(errno));
  if (fd >= 0) close(fd);
}

static const char *mount_volume(int index, int ro, const char *mountpoint) {
  static char err[300];
  if (index < 0 || index >= MAX_VOLUMES) return "volume index out of range";
  if (R.volumes[index]) return NULL;
  if (strlen(mountpoint) >= sizeof R.volumes[0]->mountpoint || mountpoint[0] != '/') return "bad mount point";
  if (mkdirs(mountpoint) < 0) {
    snprintf(err, sizeof err, "mkdir %s: %s", mountpoint, strerror(errno));
    return err;
  }
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, sizeof err, "open /dev/fuse: %s", strerror(errno));
    return err;
  }
  char data[200];
  snprintf(data, sizeof data, "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions,max_read=%d", fd, REQUEST_BUFFER - 4096);
  if (mount("fcvm", mountpoint, "fuse.fcvm", MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0), data) < 0) {
    snprintf(err, sizeof err, "mount of volume %d on %s failed: %s", index, mountpoint, strerror(errno));
    close(fd);
    return err;
  }
  struct volume *v = calloc(1, sizeof *v);
  if (!v) return "out of memory";
  v->index = index;
  v->fd = fd;
  v->read_only = ro;
  strcpy(v->mountpoint, mountpoint);
  __atomic_store_n(&R.volumes[index], v, __ATOMIC_RELEASE);
  if (pthread_create(&v->reader, NULL, uplink, v) != 0) return "cannot start a thread";
  return NULL;
}

static const char *OPS[64] = {
  [1] = "LOOKUP", [2] = "FORGET", [3] = "GETATTR", [4] = "SETATTR", [5] = "READLINK", [6] = "SYMLINK", [8] = "MKNOD",
  [9] = "MKDIR", [10] = "UNLINK", [11] = "RMDIR", [12] = "RENAME", [13] = "LINK", [14] = "OPEN", [15] = "READ",
  [16] = "WRITE", [17] = "STATFS", [18] = "RELEASE", [20] = "FSYNC", [21] = "SETXATTR", [22] = "GETXATTR",
  [23] = "LISTXATTR", [24] = "REMOVEXATTR", [25] = "FLUSH", [26] = "INIT", [27] = "OPENDIR", [28] = "READDIR",
  [29] = "RELEASEDIR", [30] = "FSYNCDIR", [31] = "GETLK", [32] = "SETLK", [33] = "SETLKW", [34] = "ACCESS",
  [35] = "CREATE", [36] = "INTERRUPT", [38] = "DESTROY", [42] = "BATCH_FORGET", [43] = "FALLOCATE",
  [44] = "READDIRPLUS", [45] = "RENAME2", [46] = "LSEEK", [47] = "COPY_FILE_RANGE", [50] = "SYNCFS",
};

static void print_stats(FILE *f) {
  struct stats *s = &R.stats;
  fprintf(f, "stats replies=%lu notifies=%lu hints=%lu reads=%lu in=%lu out=%lu", s->replies, s->notifies, s->hints, s->port_reads, s->port_bytes_in, s->port_bytes_out);
  for (int i = 0; i < 64; i++) {
    unsigned long fw = s->forwarded[i], lo = s->local[i];
    if (fw) fprintf(f, " %s=%lu", OPS[i] ? OPS[i] : "op", fw);
    if (lo) fprintf(f, " local.%s=%lu", OPS[i] ? OPS[i] : "op", lo);
  }
  fprintf(f, "\n");
}

static void unmount_all(void) {
  for (int i = 0; i < MAX_VOLUMES; i++)
    if (R.volumes[i]) umount2(R.volumes[i]->mountpoint, MNT_DETACH);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  setvbuf(stderr, NULL, _IOLBF, 0);
  if (argc == 3 && !strcmp(argv[1], "--port")) {
    R.port = open(argv[2], O_RDWR | O_NONBLOCK | O_CLOEXEC);
    R.is_port = 1;
  } else if (argc == 3 && !strcmp(argv[1], "--fd")) {
    R.port = atoi(argv[2]);
    if (fcntl(R.port, F_SETFL, fcntl(R.port, F_GETFL) | O_NONBLOCK) < 0) R.port = -1;
  } else {
    fprintf(stderr, "usage: fuse-relay --port PATH | --fd N\n");
    return 2;
  }
  if (R.port < 0) {
    logf_("cannot open the channel %s: %s", argv[2], strerror(errno));
    return 1;
  }
  notify_start();
  pthread_t down;
  if (pthread_create(&down, NULL, downlink, NULL) != 0) {
    logf_("cannot start the downlink thread");
    return 1;
  }
  char line[512];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    int index, ro, at = 0;
    if (sscanf(line, "mount %d %d %n", &index, &ro, &at) == 2 && at > 0) {
      const char *err = mount_volume(index, ro, line + at);
      if (err) printf("error %d %s\n", index, err);
      else printf("ok %d\n", index);
    } else if (!strcmp(line, "arm")) {
      atomic_store(&R.armed, 1);
      printf("armed\n");
    } else if (!strcmp(line, "disarm")) {
      atomic_store(&R.armed, 0);
      printf("disarmed\n");
    } else if (!strcmp(line, "stats")) {
      print_stats(stdout);
    } else {
      printf("error -1 unknown command\n");
    }
  }
  unmount_all();
  return 0;
}
