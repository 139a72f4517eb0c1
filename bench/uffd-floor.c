/*
 * bench/uffd's floor: the page server a person would hand-write in C for the benchmark's
 * clients, with the same loop as fcvm's (epoll, a batch of uffd_msg per read, one
 * UFFDIO_COPY per fault of the run of missing pages inside the fault-around window, a
 * wake for a fault on a page already placed). No checks, no REMOVE, one client: it shows
 * what the kernel and this machine allow, so that the distance to it is fcvm's own cost.
 *
 *   uffd-floor SOCKET MEMORY_FILE WINDOW_PAGES   (prints "ready", then one JSON line)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
struct region { unsigned long base, size, offset; };

static unsigned long field(const char *from, const char *name) {
  const char *p = strstr(from, name);
  if (!p) return 0;
  for (p += strlen(name); *p == ':' || *p == ' '; p++) {}
  return strtoul(p, NULL, 10);
}

static double cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  unsigned long window = strtoul(argv[3], NULL, 10);
  int mfd = open(argv[2], O_RDONLY);
  struct stat st;
  if (mfd < 0 || fstat(mfd, &st) != 0) return perror("memory file"), 1;
  char *src = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, mfd, 0);
  unsigned char *state = calloc(st.st_size / PAGE, 1);
  int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1) != 0) return perror("listen"), 1;
  printf("ready\n");
  fflush(stdout);
  int conn = accept(ls, NULL, NULL);
  char buf[65536], cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = { buf, sizeof buf - 1 };
  struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  ssize_t n = recvmsg(conn, &m, 0);
  if (n <= 0 || !CMSG_FIRSTHDR(&m)) return fprintf(stderr, "no handshake\n"), 1;
  buf[n] = 0;
  int uffd;
  memcpy(&uffd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof uffd);
  struct region regions[16];
  int nr = 0;
  for (char *p = buf; nr < 16 && (p = strstr(p, "{")); p++, nr++) {
    regions[nr] = (struct region){ field(p, "\"base_host_virt_addr\""), field(p, "\"size\""), field(p, "\"offset\"") };
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = uffd };
  epoll_ctl(ep, EPOLL_CTL_ADD, uffd, &ev);
  ev = (struct epoll_event){ .events = EPOLLIN | EPOLLRDHUP, .data.fd = conn };
  epoll_ctl(ep, EPOLL_CTL_ADD, conn, &ev);
  struct uffd_msg msgs[64];
  unsigned long faults = 0, pages = 0;
  double cpu0 = cpu_ns();
  for (;;) {
    struct epoll_event out[2];
    int k = epoll_wait(ep, out, 2, -1);
    int hup = 0;
    for (int i = 0; i < k; i++) hup |= out[i].data.fd == conn;
    if (hup) break; /* the client exited */
    n = read(uffd, msgs, sizeof msgs);
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) break;
    for (int i = 0; i < n / (ssize_t)sizeof msgs[0]; i++) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      unsigned long addr = msgs[i].arg.pagefault.address & ~(PAGE - 1);
      struct region *r = NULL;
      for (int j = 0; j < nr; j++) if (addr >= regions[j].base && addr < regions[j].base + regions[j].size) r = &regions[j];
      if (!r) return fprintf(stderr, "fault outside the regions\n"), 1;
      unsigned long page = (r->offset + addr - r->base) / PAGE, lo = page - page % window, hi = lo + window;
      if (lo < r->offset / PAGE) lo = r->offset / PAGE;
      if (hi > (r->offset + r->size) / PAGE) hi = (r->offset + r->size) / PAGE;
      faults++;
      if (state[page]) {
        struct uffdio_range w = { addr, PAGE };
        ioctl(uffd, UFFDIO_WAKE, &w);
        continue;
      }
      unsigned long first = page, end = page + 1;
      while (first > lo && !state[first - 1]) first--;
      while (end < hi && !state[end]) end++;
      struct uffdio_copy c = { .dst = r->base + first * PAGE - r->offset, .src = (unsigned long)src + first * PAGE, .len = (end - first) * PAGE };
      if (ioctl(uffd, UFFDIO_COPY, &c) != 0 && errno != EEXIST) return perror("UFFDIO_COPY"), 1;
      memset(state + first, 1, end - first);
      pages += end - first;
    }
  }
  printf("{\"faults\":%lu,\"pages\":%lu,\"cpuNs\":%.0f}\n", faults, pages, cpu_ns() - cpu0);
  return 0;
}
