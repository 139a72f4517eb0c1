/* fcvm-exec-spawner: starts `fcvm exec` processes in the container without an OCI runtime
 * start per exec (see src/agent/exec-spawner.ts).
 *
 * The agent starts it once per container with `crun exec --preserve-fds 2 --process SPEC`,
 * SPEC being the container's own process spec. So it runs with exactly what crun gives an
 * exec: the container's namespaces and cgroup, its user and groups, capabilities, rlimits,
 * no_new_privs and seccomp filter. Every process it forks inherits all of that; only argv,
 * env, cwd and stdio are the exec's own.
 *
 *   fd 3   this program (crun execve'd /proc/self/fd/3); closed at once
 *   fd 4   a SOCK_SEQPACKET socket from the agent; each message is one request,
 *          "ID\0FLAGS\0CWD\0ARGC\0ARG\0...ENV\0..." with three descriptors: stdin,
 *          stdout, stderr. FLAGS "t": they are a terminal's slave, which becomes the
 *          process's controlling terminal in a session of its own; "" otherwise.
 *   stdout one line per event: "ready", "exited ID CODE", "failed ID MESSAGE"
 *
 * CODE is the exit status, or 128+N for signal N, as podman exec reports it. A command that
 * cannot start exits 127 (not found) or 126 (not executable) with crun's message on its own
 * stderr. When fd 4 ends (the agent is gone) it exits; the processes it started go on.
 * Nothing here trusts a request: a malformed one is answered "failed" and dropped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CTL_FD 4
#define REQUEST_MAX (64 * 1024)
#define MAX_ARGS 4096
#define ID_MAX 32
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct child {
  pid_t pid;
  char id[ID_MAX + 1];
};

static struct child *children;
static size_t nchildren, capchildren;
static sigset_t original_mask;

static void event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void event(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  /* One write per line: a pipe keeps lines shorter than PIPE_BUF whole. */
  if (write(STDOUT_FILENO, line, n) != n) _exit(1);
}

static int valid_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > ID_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return 0;
  return 1;
}

/* In the child: what crun prints and podman's exit code for a command that cannot start. */
static void __attribute__((noreturn)) cannot_start(const char *file, int err, int searched) {
  if (searched && err == ENOENT) dprintf(STDERR_FILENO, "executable file `%s` not found in $PATH: No such file or directory\n", file);
  else dprintf(STDERR_FILENO, "exec container process `%s`: %s\n", file, strerror(err));
  _exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
}

/* In the child: execve, searching the request's PATH as crun does for a bare name. */
static void __attribute__((noreturn)) exec_command(char **argv, char **envp) {
  const char *file = argv[0];
  if (strchr(file, '/')) {
    execve(file, argv, envp);
    cannot_start(file, errno, 0);
  }
  const char *path = DEFAULT_PATH;
  for (char **e = envp; *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
  int err = ENOENT;
  char full[4096];
  for (const char *p = path;; p++) {
    const char *end = strchrnul(p, ':');
    size_t dirlen = end - p;
    if (dirlen + strlen(file) + 2 <= sizeof full) {
      if (dirlen == 0) snprintf(full, sizeof full, "%s", file);
      else snprintf(full, sizeof full, "%.*s/%s", (int)dirlen, p, file);
      execve(full, argv, envp);
      if (errno == EACCES) err = EACCES;
      else if (errno != ENOENT && errno != ENOTDIR) cannot_start(file, errno, 1);
    }
    if (*end == '\0') break;
    p = end;
  }
  cannot_start(file, err, 1);
}

/* Splits a request into id, cwd, argv and envp (pointers into buf). 0, or -1 when malformed. */
static int parse_request(char *buf, size_t len, char **id, int *tty, char **cwd, char **argv, char **envp, size_t envmax) {
  if (len == 0 || buf[len - 1] != '\0') return -1;
  char *fields[MAX_ARGS * 2 + 3];
  size_t n = 0;
  for (char *p = buf; p < buf + len; p += strlen(p) + 1) {
    if (n == sizeof fields / sizeof *fields) return -1;
    fields[n++] = p;
  }
  if (n < 5) return -1;
  *id = fields[0];
  if (strcmp(fields[1], "t") != 0 && fields[1][0] != '\0') return -1;
  *tty = fields[1][0] == 't';
  *cwd = fields[2];
  char *endp;
  long argc = strtol(fields[3], &endp, 10);
  if (*endp || argc < 1 || argc > MAX_ARGS || (size_t)argc > n - 4) return -1;
  size_t envc = n - 4 - argc;
  if (envc >= envmax || (*cwd)[0] != '/') return -1;
  memcpy(argv, fields + 4, argc * sizeof *argv);
  argv[argc] = NULL;
  memcpy(envp, fields + 4 + argc, envc * sizeof *envp);
  envp[envc] = NULL;
  return valid_id(*id) ? 0 : -1;
}

static void start(char *buf, size_t len, const int *fds) {
  static char *argv[MAX_ARGS + 1], *envp[MAX_ARGS * 2];
  char *id, *cwd;
  int tty;
  if (parse_request(buf, len, &id, &tty, &cwd, argv, envp, sizeof envp / sizeof *envp) != 0) {
    event("failed - malformed request");
    return;
  }
  if (nchildren == capchildren) {
    size_t cap = capchildren ? capchildren * 2 : 16;
    struct child *c = realloc(children, cap * sizeof *c);
    if (!c) {
      event("failed %s out of memory", id);
      return;
    }
    children = c;
    capchildren = cap;
  }
  pid_t pid = fork();
  if (pid < 0) {
    event("failed %s fork: %s", id, strerror(errno));
    return;
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &original_mask, NULL);
    if (dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[2], 2) < 0) _exit(126);
    /* As crun does for a terminal: a new session whose controlling terminal it is. */
    if (tty && (setsid() < 0 || ioctl(0, TIOCSCTTY, 0) < 0)) {
      dprintf(STDERR_FILENO, "cannot make the terminal the controlling terminal: %s\n", strerror(errno));
      _exit(126);
    }
    /* Only the three: a seccomp profile without close_range gets the loop. */
    if (close_range(3, ~0U, 0) != 0)
      for (int fd = 3; fd < 1024; fd++) close(fd);
    if (chdir(cwd) != 0) {
      int err = errno;
      dprintf(STDERR_FILENO, "chdir to `%s`: %s\n", cwd, strerror(err));
      _exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
    }
    exec_command(argv, envp);
  }
  children[nchildren].pid = pid;
  snprintf(children[nchildren].id, sizeof children[nchildren].id, "%s", id);
  nchildren++;
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (size_t i = 0; i < nchildren; i++) {
      if (children[i].pid != pid) continue;
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      event("exited %s %d", children[i].id, code);
      children[i] = children[--nchildren];
      break;
    }
  }
}

/* One request off the socket: 1 handled, 0 the agent is gone, -1 nothing to read. A
 * zero-length message reads like the end of the stream: POLLHUP tells them apart. */
static int receive(int hangup) {
  static char buf[REQUEST_MAX + 1];
  char control[CMSG_SPACE(8 * sizeof(int))];
  struct iovec iov = {.iov_base = buf, .iov_len = REQUEST_MAX};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  ssize_t n = recvmsg(CTL_FD, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return errno == EAGAIN || errno == EINTR ? -1 : 0;
  if (n == 0 && hangup) return 0;
  int fds[8], nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (int i = 0; i < count && nfds < 8; i++) memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
  }
  if (n > 0 && nfds == 3 && !(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) start(buf, n, fds);
  else event("failed - a request needs three descriptors and at most %d bytes", REQUEST_MAX);
  for (int i = 0; i < nfds; i++) close(fds[i]);
  return 1;
}

int main(int argc, char **argv) {
  close(3);
  fcntl(CTL_FD, F_SETFD, FD_CLOEXEC);
  /* The container's own processes run as the same user: they may not trace this one, read
   * its memory or take its descriptors (the execs' stdio). Each exec'd program is
   * dumpable again after its execve, as under crun. */
  prctl(PR_SET_DUMPABLE, 0);
  /* In the container's ps: "fcvm-exec", not "/proc/self/fd/3". */
  prctl(PR_SET_NAME, "fcvm-exec");
  if (argc > 0) {
    size_t n = strlen(argv[0]);
    memset(argv[0], 0, n);
    memcpy(argv[0], "fcvm-exec", n < 9 ? n : 9);
  }
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &original_mask);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    perror("fcvm-exec: signalfd");
    return 1;
  }
  event("ready");
  struct pollfd p[2] = {{.fd = CTL_FD, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
  for (;;) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      perror("fcvm-exec: poll");
      return 1;
    }
    if (p[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
      }
      reap();
    }
    if (p[0].revents) {
      int r = receive(p[0].revents & POLLHUP);
      if (r == 0) return 0;
    }
  }
}
