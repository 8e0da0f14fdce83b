/* secfile.c: checked reads and atomic writes of secret files (secfile.h). */
#include "secfile.h"

#include "apperr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

/* Secret files and the data dir: no bit for group or others. */
#define FOREIGN_BITS 0077

/* Common checks on an open descriptor: type, owner, mode. */
static int check_stat(const char *path, const struct stat *st, int want_dir, char *err,
                      size_t errlen)
{
  if (want_dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)) {
    snprintf(err, errlen, "refusing %s: not a %s", path,
             want_dir ? "directory" : "regular file");
    return CHATD_SECFILE_UNSAFE;
  }
  if (st->st_uid != geteuid()) {
    snprintf(err, errlen, "refusing %s: owned by uid %lu, not by uid %lu which runs chatd", path,
             (unsigned long)st->st_uid, (unsigned long)geteuid());
    return CHATD_SECFILE_UNSAFE;
  }
  if (st->st_mode & FOREIGN_BITS) {
    snprintf(err, errlen, "refusing %s: mode %04o, must be %s", path,
             (unsigned)(st->st_mode & 07777), want_dir ? "0700" : "0600");
    return CHATD_SECFILE_UNSAFE;
  }
  return CHATD_SECFILE_OK;
}

/* ---- Read --------------------------------------------------------------- */

static int open_secret(const char *path, char *err, size_t errlen)
{
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

  if (fd >= 0)
    return fd;
  if (errno == ENOENT)
    return app_fail(CHATD_SECFILE_MISSING, err, errlen, "cannot read %s: %s", path,
                "no such file");
  if (errno == ELOOP)
    return app_fail(CHATD_SECFILE_UNSAFE, err, errlen, "refusing %s: %s", path,
                "it is a symbolic link");
  return app_fail(CHATD_SECFILE_IO, err, errlen, "cannot read %s: %s", path, strerror(errno));
}

static int read_all(int fd, unsigned char *buf, size_t want, size_t cap, size_t *got)
{
  size_t off = 0;

  /* Read one byte more than announced: a file that grew is noticed. */
  while (off < cap) {
    ssize_t r = read(fd, buf + off, cap - off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    off += (size_t)r;
    if (off > want)
      break;
  }
  *got = off;
  return 0;
}

int chatd_secfile_read(const char *path, void *buf, size_t cap, size_t *len, char *err,
                       size_t errlen)
{
  struct stat st;
  size_t got = 0;
  int fd, rc;

  *len = 0;
  fd = open_secret(path, err, errlen);
  if (fd < 0)
    return fd;
  if (fstat(fd, &st) != 0) {
    rc = app_fail(CHATD_SECFILE_IO, err, errlen, "cannot stat %s: %s", path, strerror(errno));
    goto out;
  }
  rc = check_stat(path, &st, 0, err, errlen);
  if (rc != CHATD_SECFILE_OK)
    goto out;
  if (st.st_size == 0) {
    rc = app_fail(CHATD_SECFILE_INVALID, err, errlen, "refusing %s: %s", path, "empty file");
    goto out;
  }
  if ((unsigned long long)st.st_size > cap) {
    snprintf(err, errlen, "refusing %s: %llu bytes, larger than the %zu-byte limit", path,
             (unsigned long long)st.st_size, cap);
    rc = CHATD_SECFILE_INVALID;
    goto out;
  }
  if (read_all(fd, buf, (size_t)st.st_size, cap, &got) != 0) {
    rc = app_fail(CHATD_SECFILE_IO, err, errlen, "cannot read %s: %s", path, strerror(errno));
    goto out;
  }
  if (got != (size_t)st.st_size) {
    rc = app_fail(CHATD_SECFILE_INVALID, err, errlen, "refusing %s: %s", path,
              "the file changed while it was read");
    goto out;
  }
  *len = got;
  rc = CHATD_SECFILE_OK;
out:
  if (rc != CHATD_SECFILE_OK)
    sodium_memzero(buf, cap);
  close(fd);
  return rc;
}

/* ---- Write -------------------------------------------------------------- */

static int write_all(int fd, const unsigned char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Directory part of path into dir (PATH_MAX): "." when there is none. */
static void dir_of(const char *path, char *dir)
{
  const char *slash = strrchr(path, '/');

  if (!slash)
    snprintf(dir, PATH_MAX, ".");
  else if (slash == path)
    snprintf(dir, PATH_MAX, "/");
  else
    snprintf(dir, PATH_MAX, "%.*s", (int)(slash - path), path);
}

static int fsync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r;

  if (fd < 0)
    return -1;
  r = fsync(fd);
  close(fd);
  return r;
}

/* Move tmp to path: rename(2), or renameat2(RENAME_NOREPLACE) so an
 * existing file is never overwritten; link(2)+unlink(2) where the file
 * system lacks RENAME_NOREPLACE. Returns 0 or -1 (errno). */
static int move_into_place(const char *tmp, const char *path, int replace)
{
  if (replace)
    return rename(tmp, path);
  if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS)
    return -1;
  if (link(tmp, path) != 0)
    return -1;
  unlink(tmp);
  return 0;
}

int chatd_secfile_write(const char *path, const void *data, size_t len, int replace, char *err,
                        size_t errlen)
{
  char tmp[PATH_MAX], dir[PATH_MAX], rnd[17];
  unsigned char r[8];
  int fd, n;

  randombytes_buf(r, sizeof r);
  sodium_bin2hex(rnd, sizeof rnd, r, sizeof r);
  n = snprintf(tmp, sizeof tmp, "%s.tmp-%s", path, rnd);
  if (n < 0 || (size_t)n >= sizeof tmp)
    return app_fail(CHATD_SECFILE_IO, err, errlen, "cannot write %s: %s", path, "path too long");
  dir_of(path, dir);

  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return app_fail(CHATD_SECFILE_IO, err, errlen, "cannot create a file next to %s: %s", path,
                strerror(errno));
  /* The umask can only remove bits; fchmod makes it exactly 0600. */
  if (fchmod(fd, 0600) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return app_fail(CHATD_SECFILE_IO, err, errlen, "cannot write %s: %s", path, strerror(e));
  }
  if (close(fd) != 0 || move_into_place(tmp, path, replace) != 0) {
    int e = errno;
    unlink(tmp);
    if (e == EEXIST)
      return app_fail(CHATD_SECFILE_EXISTS, err, errlen, "not overwriting %s: %s", path,
                  "the file exists");
    return app_fail(CHATD_SECFILE_IO, err, errlen, "cannot write %s: %s", path, strerror(e));
  }
  if (fsync_dir(dir) != 0)
    return app_fail(CHATD_SECFILE_IO, err, errlen, "cannot sync the directory of %s: %s", path,
                strerror(errno));
  return CHATD_SECFILE_OK;
}

/* ---- Data directory ----------------------------------------------------- */

/* mkdir -p with mode 0700 for every directory it creates. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
  char p[PATH_MAX];
  size_t n = strlen(dir);

  if (n == 0 || n >= sizeof p)
    return app_fail(CHATD_SECFILE_IO, err, errlen, "bad data directory %s: %s", dir,
                n ? "path too long" : "empty path");
  memcpy(p, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != '\0')
      continue;
    p[i] = '\0';
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
      return app_fail(CHATD_SECFILE_IO, err, errlen, "cannot create directory %s: %s", p,
                  strerror(errno));
    p[i] = i < n ? '/' : '\0';
  }
  return CHATD_SECFILE_OK;
}

int chatd_secfile_datadir(const char *dir, char *err, size_t errlen)
{
  struct stat st;
  int fd, rc;

  rc = make_dirs(dir, err, errlen);
  if (rc != CHATD_SECFILE_OK)
    return rc;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return app_fail(errno == ENOTDIR ? CHATD_SECFILE_UNSAFE : CHATD_SECFILE_IO, err, errlen,
                "refusing data directory %s: %s", dir, strerror(errno));
  if (fstat(fd, &st) != 0)
    rc = app_fail(CHATD_SECFILE_IO, err, errlen, "cannot stat %s: %s", dir, strerror(errno));
  else
    rc = check_stat(dir, &st, 1, err, errlen);
  close(fd);
  return rc;
}
