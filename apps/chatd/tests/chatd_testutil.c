/* chatd_testutil.c: see chatd_testutil.h. */
#include "chatd_testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int ctu_run(Suite *s)
{
  SRunner *sr = srunner_create(s);
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}

char *ctu_tmpdir(void)
{
  char tmpl[] = "/tmp/chatd-test-XXXXXX";
  char *d = mkdtemp(tmpl);

  ck_assert_msg(d != NULL, "mkdtemp: %s", strerror(errno));
  return strdup(d);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

void ctu_rm_rf(const char *dir)
{
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *ctu_read_file(const char *path, size_t *len)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  size_t cap = 4096, n = 0;
  char *buf;

  if (fd < 0)
    return NULL;
  buf = malloc(cap);
  for (;;) {
    ssize_t r;
    if (n + 1 >= cap)
      buf = realloc(buf, cap *= 2);
    r = read(fd, buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

void ctu_write_file(const char *path, const char *data, size_t len, unsigned mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

  ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
  ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
  ck_assert_int_eq(fchmod(fd, mode), 0);
  close(fd);
}

/* Append what fd has into *buf (malloc'd); returns 0 at EOF. */
static int drain(int fd, char **buf, size_t *n)
{
  char tmp[4096];
  ssize_t r = read(fd, tmp, sizeof tmp);

  if (r < 0 && errno == EINTR)
    return 1;
  if (r <= 0)
    return 0;
  *buf = realloc(*buf, *n + (size_t)r + 1);
  memcpy(*buf + *n, tmp, (size_t)r);
  *n += (size_t)r;
  (*buf)[*n] = '\0';
  return 1;
}

int ctu_exec(char *const argv[], char *const envp[], char **out, char **err)
{
  int po[2], pe[2], status;
  char *bo = calloc(1, 1), *be = calloc(1, 1);
  size_t no = 0, ne = 0;
  pid_t pid;

  ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(po[1], STDOUT_FILENO);
    dup2(pe[1], STDERR_FILENO);
    execve(argv[0], argv, envp);
    _exit(127);
  }
  close(po[1]);
  close(pe[1]);
  {
    struct pollfd pf[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
      if (poll(pf, 2, -1) < 0)
        continue;
      for (int i = 0; i < 2; i++) {
        if (pf[i].fd >= 0 && pf[i].revents &&
            !drain(pf[i].fd, i ? &be : &bo, i ? &ne : &no)) {
          close(pf[i].fd);
          pf[i].fd = -1;
          open_fds--;
        }
      }
    }
  }
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (out)
    *out = bo;
  else
    free(bo);
  if (err)
    *err = be;
  else
    free(be);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int bound_socket(int type, struct sockaddr_in *addr)
{
  socklen_t len = sizeof *addr;
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

  ck_assert_int_ge(fd, 0);
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)addr, sizeof *addr), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
  return fd;
}

int ctu_tcp_listener(struct sockaddr_in *addr, int backlog)
{
  int fd = bound_socket(SOCK_STREAM, addr);

  ck_assert_int_eq(listen(fd, backlog), 0);
  return fd;
}

int ctu_udp_socket(struct sockaddr_in *addr)
{
  return bound_socket(SOCK_DGRAM, addr);
}

unsigned short ctu_free_port(void)
{
  struct sockaddr_in a;
  int fd = bound_socket(SOCK_STREAM, &a);

  close(fd);
  return ntohs(a.sin_port);
}

unsigned long long ctu_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

unsigned long long ctu_cpu_ms(void)
{
  struct rusage ru;

  getrusage(RUSAGE_SELF, &ru);
  return (unsigned long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000ull +
         (unsigned long long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000ull;
}
