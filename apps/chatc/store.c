/* store.c: home directory, atomic 0600 files, lock, local history (see store.h). */
#include "store.h"

#include "apperr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Home resolution -------------------------------------------------------- */

static int set_path(char *out, size_t cap, const char *a, const char *b, char *err,
                    size_t errlen)
{
  size_t n;
  int w = snprintf(out, cap, "%s%s", a, b);

  if (w < 0 || (size_t)w >= cap)
    return app_fail(CHATC_STORE_INVALID, err, errlen, "home directory path too long");
  /* Strip trailing slashes: O_NOFOLLOW must see the last component. */
  n = strlen(out);
  while (n > 1 && out[n - 1] == '/')
    out[--n] = '\0';
  return CHATC_STORE_OK;
}

int chatc_home_resolve(const char *opt_home, const char *xdg, const char *home,
                       const char *pw_dir, char *out, size_t cap, char *err, size_t errlen)
{
  if (opt_home != NULL) {
    if (opt_home[0] == '\0')
      return app_fail(CHATC_STORE_INVALID, err, errlen, "--home: empty path");
    return set_path(out, cap, opt_home, "", err, errlen);
  }
  /* XDG base directory spec: relative values are to be ignored. */
  if (xdg != NULL && xdg[0] == '/')
    return set_path(out, cap, xdg, "/secchat", err, errlen);
  if (home != NULL && home[0] == '/')
    return set_path(out, cap, home, "/.config/secchat", err, errlen);
  if (pw_dir != NULL && pw_dir[0] == '/')
    return set_path(out, cap, pw_dir, "/.config/secchat", err, errlen);
  return app_fail(CHATC_STORE_INVALID, err, errlen,
              "cannot find a home directory: set HOME or XDG_CONFIG_HOME, or use --home DIR");
}

int chatc_home_default(const char *opt_home, char *out, size_t cap, char *err, size_t errlen)
{
  const char *home = getenv("HOME");
  const char *pw_dir = NULL;
  struct passwd *pw;

  if (opt_home == NULL && (home == NULL || home[0] != '/')) {
    pw = getpwuid(geteuid());
    if (pw != NULL)
      pw_dir = pw->pw_dir;
  }
  return chatc_home_resolve(opt_home, getenv("XDG_CONFIG_HOME"), home, pw_dir, out, cap, err,
                            errlen);
}

/* ---- Checks ----------------------------------------------------------------- */

/* The open fd must be a directory (want_dir) or a regular file, owned by
 * us, with no group/other bit. dpath/name only build the message. */
static int check_fd(int fd, const char *dpath, const char *name, int want_dir, char *err,
                    size_t errlen)
{
  struct stat sb;
  const char *sep = name != NULL ? "/" : "";

  if (name == NULL)
    name = "";
  if (fstat(fd, &sb) != 0)
    return app_fail(CHATC_STORE_IO, err, errlen, "%s%s%s: %s", dpath, sep, name, strerror(errno));
  if (want_dir ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode))
    return app_fail(CHATC_STORE_UNSAFE, err, errlen, "refusing %s%s%s: not a %s", dpath, sep, name,
                want_dir ? "directory" : "regular file");
  if (sb.st_uid != geteuid())
    return app_fail(CHATC_STORE_UNSAFE, err, errlen,
                "refusing %s%s%s: owned by uid %lu, not by you (uid %lu)", dpath, sep, name,
                (unsigned long)sb.st_uid, (unsigned long)geteuid());
  if ((sb.st_mode & 077) != 0)
    return app_fail(CHATC_STORE_UNSAFE, err, errlen,
                "refusing %s%s%s: mode %04o gives access to other users, must be %s "
                "(chmod %s %s%s%s)",
                dpath, sep, name, (unsigned)(sb.st_mode & 07777), want_dir ? "0700" : "0600",
                want_dir ? "700" : "600", dpath, sep, name);
  return CHATC_STORE_OK;
}

static int name_ok(const char *name)
{
  size_t n = name != NULL ? strlen(name) : 0;

  if (n == 0 || n > CHATC_STORE_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

/* open(2) of a file in dfd: maps ENOENT/ELOOP to store results. */
static int open_in(int dfd, const char *dpath, const char *name, int flags, int *fd, char *err,
                   size_t errlen)
{
  if (!name_ok(name))
    return app_fail(CHATC_STORE_INVALID, err, errlen, "invalid file name");
  *fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
  if (*fd >= 0)
    return CHATC_STORE_OK;
  if (errno == ENOENT)
    return app_fail(CHATC_STORE_MISSING, err, errlen, "%s/%s: no such file", dpath, name);
  if (errno == ELOOP)
    return app_fail(CHATC_STORE_UNSAFE, err, errlen, "refusing %s/%s: a symbolic link", dpath, name);
  return app_fail(CHATC_STORE_IO, err, errlen, "%s/%s: %s", dpath, name, strerror(errno));
}

/* ---- Opening the home ---------------------------------------------------- */

/* mkdir -p with mode 0700 for what we create; existing parents are left
 * alone (only the home itself is checked). */
static int mkdir_p(const char *path, char *err, size_t errlen)
{
  char buf[4096];
  size_t n = strlen(path);

  if (n >= sizeof(buf))
    return app_fail(CHATC_STORE_INVALID, err, errlen, "home directory path too long");
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0')
      continue;
    buf[i] = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
      return app_fail(CHATC_STORE_IO, err, errlen, "cannot create %s: %s", buf, strerror(errno));
    buf[i] = path[i];
  }
  return CHATC_STORE_OK;
}

static void store_reset(chatc_store *st)
{
  st->dirfd = st->histfd = st->lockfd = -1;
  st->hist_cap = CHATC_HIST_CAP_DEFAULT;
}

/* Take the lock; on contention name the pid written by the holder. */
static int take_lock(chatc_store *st, char *err, size_t errlen)
{
  char pid[32];
  ssize_t n;
  int rc, w;

  rc = open_in(st->dirfd, st->path, CHATC_FILE_LOCK, O_RDWR | O_CREAT, &st->lockfd, err, errlen);
  if (rc != CHATC_STORE_OK)
    return rc;
  if ((rc = check_fd(st->lockfd, st->path, CHATC_FILE_LOCK, 0, err, errlen)) != CHATC_STORE_OK)
    return rc;
  if (flock(st->lockfd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK)
      return app_fail(CHATC_STORE_IO, err, errlen, "%s/%s: flock: %s", st->path, CHATC_FILE_LOCK,
                  strerror(errno));
    n = pread(st->lockfd, pid, sizeof(pid) - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    if (strspn(pid, "0123456789") != strlen(pid) || pid[0] == '\0')
      snprintf(pid, sizeof(pid), "?");
    return app_fail(CHATC_STORE_LOCKED, err, errlen,
                "another chatc process (pid %s) is using %s; one process per home", pid,
                st->path);
  }
  w = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
  if (ftruncate(st->lockfd, 0) != 0 || pwrite(st->lockfd, pid, (size_t)w, 0) != w)
    return app_fail(CHATC_STORE_IO, err, errlen, "%s/%s: %s", st->path, CHATC_FILE_LOCK,
                strerror(errno));
  return CHATC_STORE_OK;
}

int chatc_store_open(chatc_store *st, const char *dir, char *err, size_t errlen)
{
  int rc;

  store_reset(st);
  if (dir == NULL || dir[0] == '\0' || strlen(dir) >= sizeof(st->path))
    return app_fail(CHATC_STORE_INVALID, err, errlen, "invalid home directory path");
  memcpy(st->path, dir, strlen(dir) + 1);
  if ((rc = mkdir_p(dir, err, errlen)) != CHATC_STORE_OK)
    return rc;
  st->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (st->dirfd < 0) {
    rc = errno == ELOOP || errno == ENOTDIR
             ? app_fail(CHATC_STORE_UNSAFE, err, errlen,
                    "refusing %s: not a directory (a symbolic link or a file)", dir)
             : app_fail(CHATC_STORE_IO, err, errlen, "%s: %s", dir, strerror(errno));
    chatc_store_close(st);
    return rc;
  }
  if ((rc = check_fd(st->dirfd, st->path, NULL, 1, err, errlen)) != CHATC_STORE_OK ||
      (rc = take_lock(st, err, errlen)) != CHATC_STORE_OK) {
    chatc_store_close(st);
    return rc;
  }
  return CHATC_STORE_OK;
}

void chatc_store_close(chatc_store *st)
{
  if (st->lockfd >= 0)
    close(st->lockfd); /* releases the flock */
  if (st->histfd >= 0)
    close(st->histfd);
  if (st->dirfd >= 0)
    close(st->dirfd);
  st->dirfd = st->histfd = st->lockfd = -1;
}

void chatc_store_set_hist_cap(chatc_store *st, size_t cap)
{
  st->hist_cap = cap < 4096 ? 4096 : cap;
}

/* ---- Files -------------------------------------------------------------------- */

/* Read an open, checked file: up to max bytes, more is INVALID. */
static int read_fd(int fd, const char *dpath, const char *name, uint8_t *buf, size_t max,
                   size_t *len, char *err, size_t errlen)
{
  size_t got = 0;
  ssize_t n;
  uint8_t extra;

  while (got < max) {
    n = read(fd, buf + got, max - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return app_fail(CHATC_STORE_IO, err, errlen, "%s/%s: %s", dpath, name, strerror(errno));
    if (n == 0)
      break;
    got += (size_t)n;
  }
  if (got == max) {
    do
      n = read(fd, &extra, 1);
    while (n < 0 && errno == EINTR);
    if (n != 0)
      return app_fail(CHATC_STORE_INVALID, err, errlen, "%s/%s: larger than %zu bytes", dpath, name,
                  max);
  }
  *len = got;
  return CHATC_STORE_OK;
}

static int open_checked(int dfd, const char *dpath, const char *name, int *fd, char *err,
                        size_t errlen)
{
  int rc = open_in(dfd, dpath, name, O_RDONLY | O_NONBLOCK, fd, err, errlen);

  if (rc != CHATC_STORE_OK)
    return rc;
  if ((rc = check_fd(*fd, dpath, name, 0, err, errlen)) != CHATC_STORE_OK) {
    close(*fd);
    *fd = -1;
  }
  return rc;
}

int chatc_store_read(const chatc_store *st, const char *name, void *buf, size_t cap, size_t *len,
                     char *err, size_t errlen)
{
  int fd = -1, rc;

  *len = 0;
  if ((rc = open_checked(st->dirfd, st->path, name, &fd, err, errlen)) == CHATC_STORE_OK) {
    rc = read_fd(fd, st->path, name, buf, cap, len, err, errlen);
    close(fd);
  }
  if (rc != CHATC_STORE_OK) {
    sodium_memzero(buf, cap);
    *len = 0;
  }
  return rc;
}

static int read_alloc_at(int dfd, const char *dpath, const char *name, size_t max, uint8_t **out,
                         size_t *len, char *err, size_t errlen)
{
  struct stat sb;
  uint8_t *buf;
  size_t want;
  int fd = -1, rc;

  *out = NULL;
  *len = 0;
  if ((rc = open_checked(dfd, dpath, name, &fd, err, errlen)) != CHATC_STORE_OK)
    return rc;
  if (fstat(fd, &sb) != 0) {
    close(fd);
    return app_fail(CHATC_STORE_IO, err, errlen, "%s/%s: %s", dpath, name, strerror(errno));
  }
  if ((uint64_t)sb.st_size > max) {
    close(fd);
    return app_fail(CHATC_STORE_INVALID, err, errlen, "%s/%s: larger than %zu bytes", dpath, name,
                max);
  }
  if (sb.st_size == 0) {
    close(fd);
    return CHATC_STORE_OK;
  }
  /* Size from fstat; read_fd still refuses a file that grew meanwhile. */
  want = (size_t)sb.st_size;
  if ((buf = malloc(want)) == NULL) {
    close(fd);
    return app_fail(CHATC_STORE_NOMEM, err, errlen, "out of memory");
  }
  rc = read_fd(fd, dpath, name, buf, want, len, err, errlen);
  close(fd);
  if (rc != CHATC_STORE_OK) {
    sodium_memzero(buf, want);
    free(buf);
    *len = 0;
    return rc;
  }
  *out = buf;
  return CHATC_STORE_OK;
}

int chatc_store_read_alloc(const chatc_store *st, const char *name, size_t max, uint8_t **out,
                           size_t *len, char *err, size_t errlen)
{
  return read_alloc_at(st->dirfd, st->path, name, max, out, len, err, errlen);
}

static int write_all(int fd, const void *data, size_t len)
{
  const uint8_t *p = data;
  ssize_t n;

  while (len > 0) {
    n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Atomic replace of dfd/name (see store.h). */
static int write_at(int dfd, const char *dpath, const char *name, const void *data, size_t len,
                    char *err, size_t errlen)
{
  uint8_t rnd[8];
  char tmp[32];
  int fd, rc;

  if (!name_ok(name))
    return app_fail(CHATC_STORE_INVALID, err, errlen, "invalid file name");
  randombytes_buf(rnd, sizeof(rnd));
  memcpy(tmp, ".tmp-", 5);
  sodium_bin2hex(tmp + 5, sizeof(tmp) - 5, rnd, sizeof(rnd));
  fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return app_fail(CHATC_STORE_IO, err, errlen, "%s/%s: %s", dpath, tmp, strerror(errno));
  rc = CHATC_STORE_OK;
  /* fchmod: the umask may have removed bits we want, never added any. */
  if (fchmod(fd, 0600) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0)
    rc = app_fail(CHATC_STORE_IO, err, errlen, "writing %s/%s: %s", dpath, name, strerror(errno));
  if (close(fd) != 0 && rc == CHATC_STORE_OK)
    rc = app_fail(CHATC_STORE_IO, err, errlen, "writing %s/%s: %s", dpath, name, strerror(errno));
  if (rc == CHATC_STORE_OK && renameat(dfd, tmp, dfd, name) != 0)
    rc = app_fail(CHATC_STORE_IO, err, errlen, "renaming to %s/%s: %s", dpath, name,
              strerror(errno));
  if (rc != CHATC_STORE_OK) {
    unlinkat(dfd, tmp, 0);
    return rc;
  }
  if (fsync(dfd) != 0)
    return app_fail(CHATC_STORE_IO, err, errlen, "%s: fsync: %s", dpath, strerror(errno));
  return CHATC_STORE_OK;
}

int chatc_store_write(const chatc_store *st, const char *name, const void *data, size_t len,
                      char *err, size_t errlen)
{
  return write_at(st->dirfd, st->path, name, data, len, err, errlen);
}

int chatc_store_remove(const chatc_store *st, const char *name, char *err, size_t errlen)
{
  if (!name_ok(name))
    return app_fail(CHATC_STORE_INVALID, err, errlen, "invalid file name");
  if (unlinkat(st->dirfd, name, 0) != 0) {
    if (errno == ENOENT)
      return app_fail(CHATC_STORE_MISSING, err, errlen, "%s/%s: no such file", st->path, name);
    return app_fail(CHATC_STORE_IO, err, errlen, "%s/%s: %s", st->path, name, strerror(errno));
  }
  return fsync(st->dirfd) == 0
             ? CHATC_STORE_OK
             : app_fail(CHATC_STORE_IO, err, errlen, "%s: fsync: %s", st->path, strerror(errno));
}

/* ---- History -------------------------------------------------------------- */

void chatc_hist_name(const void *chat, size_t chat_len, char out[40])
{
  static const char ctx[] = "secchat/chatc-history-name/v1";
  crypto_generichash_state s;
  uint8_t h[16];

  crypto_generichash_init(&s, NULL, 0, sizeof(h));
  crypto_generichash_update(&s, (const uint8_t *)ctx, sizeof(ctx)); /* with its NUL */
  crypto_generichash_update(&s, chat, chat_len);
  crypto_generichash_final(&s, h, sizeof(h));
  sodium_bin2hex(out, 33, h, sizeof(h));
  memcpy(out + 32, ".log", 5);
}

static int hist_dir(chatc_store *st, char *err, size_t errlen)
{
  int rc;

  if (st->histfd >= 0)
    return CHATC_STORE_OK;
  if (mkdirat(st->dirfd, CHATC_DIR_HISTORY, 0700) != 0 && errno != EEXIST)
    return app_fail(CHATC_STORE_IO, err, errlen, "%s/%s: %s", st->path, CHATC_DIR_HISTORY,
                strerror(errno));
  st->histfd =
      openat(st->dirfd, CHATC_DIR_HISTORY, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (st->histfd < 0)
    return app_fail(errno == ELOOP || errno == ENOTDIR ? CHATC_STORE_UNSAFE : CHATC_STORE_IO, err,
                errlen, "refusing %s/%s: %s", st->path, CHATC_DIR_HISTORY, strerror(errno));
  snprintf(st->hist_path, sizeof(st->hist_path), "%s/%s", st->path, CHATC_DIR_HISTORY);
  if ((rc = check_fd(st->histfd, st->path, CHATC_DIR_HISTORY, 1, err, errlen)) != CHATC_STORE_OK) {
    close(st->histfd);
    st->histfd = -1;
  }
  return rc;
}

/* Largest history file we load: the cap (or the default cap, so that a
 * file written before the cap was lowered can still be read and trimmed)
 * plus one record. */
static size_t hist_load_max(const chatc_store *st)
{
  size_t cap = st->hist_cap > CHATC_HIST_CAP_DEFAULT ? st->hist_cap : CHATC_HIST_CAP_DEFAULT;

  return cap + CHATC_HIST_RECORD_MAX + 16;
}

static uint32_t be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int chatc_hist_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **rec,
                    size_t *rec_len)
{
  uint32_t n;

  if (len < CHATC_HIST_MAGIC_LEN || memcmp(buf, CHATC_HIST_MAGIC, CHATC_HIST_MAGIC_LEN) != 0)
    return -1;
  if (*off < CHATC_HIST_MAGIC_LEN)
    *off = CHATC_HIST_MAGIC_LEN;
  if (*off > len || len - *off < 4)
    return 0;
  n = be32(buf + *off);
  if (n == 0 || n > CHATC_HIST_RECORD_MAX || len - *off - 4 < n)
    return 0; /* torn or corrupt tail: nothing after it is trusted */
  *rec = buf + *off + 4;
  *rec_len = n;
  *off += 4 + (size_t)n;
  return 1;
}

/* Offset just after the last whole record of the open file (size bytes),
 * walking the length chain with 4-byte reads. */
static int hist_valid_end(int fd, uint64_t size, uint64_t *end)
{
  uint64_t off = CHATC_HIST_MAGIC_LEN;
  uint8_t hdr[4];
  uint32_t n;

  while (size - off >= 4) {
    if (pread(fd, hdr, 4, (off_t)off) != 4)
      return -1;
    n = be32(hdr);
    if (n == 0 || n > CHATC_HIST_RECORD_MAX || size - off - 4 < n)
      break;
    off += 4 + (uint64_t)n;
  }
  *end = off;
  return 0;
}

/* Rewrite the file without its oldest records, down to 3/4 of the cap
 * (always keeping the newest record). */
static int hist_trim(chatc_store *st, const char *name, char *err, size_t errlen)
{
  size_t low = st->hist_cap - st->hist_cap / 4, len, off = 0, rl, keep_from, total;
  const uint8_t *rec;
  uint8_t *buf, *nb;
  size_t *offs = NULL, n = 0, cap = 0;
  int rc;

  rc = read_alloc_at(st->histfd, st->hist_path, name, hist_load_max(st), &buf,
                     &len, err, errlen);
  if (rc != CHATC_STORE_OK)
    return rc;
  while (chatc_hist_next(buf, len, &off, &rec, &rl) == 1) {
    if (n == cap) {
      size_t *t = realloc(offs, (cap = cap ? 2 * cap : 256) * sizeof(*offs));
      if (t == NULL) {
        free(offs);
        free(buf);
        return app_fail(CHATC_STORE_NOMEM, err, errlen, "out of memory");
      }
      offs = t;
    }
    offs[n++] = (size_t)(rec - buf) - 4;
  }
  /* off is now the end of the last whole record. */
  keep_from = n > 0 ? n - 1 : 0;
  while (keep_from > 0 && CHATC_HIST_MAGIC_LEN + (off - offs[keep_from - 1]) <= low)
    keep_from--;
  total = n > 0 ? off - offs[keep_from] : 0;
  rc = CHATC_STORE_NOMEM;
  if ((nb = malloc(CHATC_HIST_MAGIC_LEN + total)) != NULL) {
    memcpy(nb, CHATC_HIST_MAGIC, CHATC_HIST_MAGIC_LEN);
    if (total > 0)
      memcpy(nb + CHATC_HIST_MAGIC_LEN, buf + offs[keep_from], total);
    rc = write_at(st->histfd, st->hist_path, name, nb, CHATC_HIST_MAGIC_LEN + total, err, errlen);
    free(nb);
  } else {
    app_fail(rc, err, errlen, "out of memory");
  }
  free(offs);
  free(buf);
  return rc;
}

int chatc_hist_append(chatc_store *st, const void *chat, size_t chat_len, const void *rec,
                      size_t len, char *err, size_t errlen)
{
  char name[40];
  uint8_t magic[CHATC_HIST_MAGIC_LEN], *frame;
  struct stat sb;
  uint64_t end;
  int fd, rc;

  if (len == 0 || len > CHATC_HIST_RECORD_MAX)
    return app_fail(CHATC_STORE_INVALID, err, errlen, "history record of %zu bytes refused", len);
  if ((rc = hist_dir(st, err, errlen)) != CHATC_STORE_OK)
    return rc;
  chatc_hist_name(chat, chat_len, name);
  if ((rc = open_in(st->histfd, st->hist_path, name, O_RDWR | O_CREAT, &fd, err, errlen)) != 0)
    return rc;
  if ((rc = check_fd(fd, st->hist_path, name, 0, err, errlen)) != CHATC_STORE_OK)
    goto out;
  rc = CHATC_STORE_IO;
  if (fstat(fd, &sb) != 0)
    goto io;
  if ((uint64_t)sb.st_size < CHATC_HIST_MAGIC_LEN) {
    /* New file, or a crash while its magic was written. */
    if (ftruncate(fd, 0) != 0 || pwrite(fd, CHATC_HIST_MAGIC, CHATC_HIST_MAGIC_LEN, 0) !=
                                     (ssize_t)CHATC_HIST_MAGIC_LEN)
      goto io;
    end = CHATC_HIST_MAGIC_LEN;
  } else {
    if (pread(fd, magic, sizeof(magic), 0) != (ssize_t)sizeof(magic))
      goto io;
    if (memcmp(magic, CHATC_HIST_MAGIC, CHATC_HIST_MAGIC_LEN) != 0) {
      rc = app_fail(CHATC_STORE_INVALID, err, errlen, "%s/%s: not a chatc history file",
                st->hist_path, name);
      goto out;
    }
    if (hist_valid_end(fd, (uint64_t)sb.st_size, &end) != 0)
      goto io;
    if (end != (uint64_t)sb.st_size && ftruncate(fd, (off_t)end) != 0)
      goto io; /* cut a torn tail so the new record stays reachable */
  }
  if ((frame = malloc(4 + len)) == NULL) {
    rc = app_fail(CHATC_STORE_NOMEM, err, errlen, "out of memory");
    goto out;
  }
  frame[0] = (uint8_t)(len >> 24), frame[1] = (uint8_t)(len >> 16);
  frame[2] = (uint8_t)(len >> 8), frame[3] = (uint8_t)len;
  memcpy(frame + 4, rec, len);
  rc = pwrite(fd, frame, 4 + len, (off_t)end) == (ssize_t)(4 + len) && fsync(fd) == 0
           ? CHATC_STORE_OK
           : CHATC_STORE_IO;
  free(frame);
  if (rc != CHATC_STORE_OK)
    goto io;
  close(fd);
  if (end + 4 + len > st->hist_cap)
    return hist_trim(st, name, err, errlen);
  return CHATC_STORE_OK;
io:
  rc = app_fail(CHATC_STORE_IO, err, errlen, "%s/%s: %s", st->hist_path, name, strerror(errno));
out:
  close(fd);
  return rc;
}

int chatc_hist_load(chatc_store *st, const void *chat, size_t chat_len, uint8_t **buf,
                    size_t *len, char *err, size_t errlen)
{
  char name[40];
  int rc;

  *buf = NULL;
  *len = 0;
  if ((rc = hist_dir(st, err, errlen)) != CHATC_STORE_OK)
    return rc;
  chatc_hist_name(chat, chat_len, name);
  rc = read_alloc_at(st->histfd, st->hist_path, name, hist_load_max(st), buf,
                     len, err, errlen);
  if (rc != CHATC_STORE_OK)
    return rc;
  if (*len < CHATC_HIST_MAGIC_LEN || memcmp(*buf, CHATC_HIST_MAGIC, CHATC_HIST_MAGIC_LEN) != 0) {
    free(*buf);
    *buf = NULL;
    *len = 0;
    return app_fail(CHATC_STORE_INVALID, err, errlen, "%s/%s: not a chatc history file",
                st->hist_path, name);
  }
  return CHATC_STORE_OK;
}
