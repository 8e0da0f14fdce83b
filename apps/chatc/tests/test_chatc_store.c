/* Home directory, file modes, atomic writes, lock, local history (store.c). */
#include "store.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[256];
static char home[512];
static char err[1024];

static void setup(void)
{
  snprintf(base, sizeof(base), "/tmp/chatc-store-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(base));
  snprintf(home, sizeof(home), "%s/cfg/secchat", base);
  umask(022);
}

static void teardown(void)
{
  char cmd[600];

  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
  ck_assert_int_eq(system(cmd), 0);
}

static mode_t mode_of(const char *path)
{
  struct stat sb;

  ck_assert_int_eq(lstat(path, &sb), 0);
  return sb.st_mode & 07777;
}

START_TEST(resolve_rules)
{
  char out[256];

  ck_assert_int_eq(chatc_home_resolve("/h/x/", "/xdg", "/home/u", "/pw", out, sizeof(out), err,
                                      sizeof(err)), 0);
  ck_assert_str_eq(out, "/h/x");
  ck_assert_int_eq(chatc_home_resolve(NULL, "/xdg", "/home/u", "/pw", out, sizeof(out), err,
                                      sizeof(err)), 0);
  ck_assert_str_eq(out, "/xdg/secchat");
  /* A relative XDG_CONFIG_HOME is ignored (XDG base directory spec). */
  ck_assert_int_eq(chatc_home_resolve(NULL, "rel", "/home/u", "/pw", out, sizeof(out), err,
                                      sizeof(err)), 0);
  ck_assert_str_eq(out, "/home/u/.config/secchat");
  ck_assert_int_eq(chatc_home_resolve(NULL, NULL, NULL, "/pw", out, sizeof(out), err,
                                      sizeof(err)), 0);
  ck_assert_str_eq(out, "/pw/.config/secchat");
  ck_assert_int_eq(chatc_home_resolve(NULL, "", "", NULL, out, sizeof(out), err, sizeof(err)),
                   CHATC_STORE_INVALID);
  ck_assert_ptr_nonnull(strstr(err, "--home"));
  ck_assert_int_eq(chatc_home_resolve("", NULL, "/h", NULL, out, sizeof(out), err, sizeof(err)),
                   CHATC_STORE_INVALID);
  ck_assert_int_eq(chatc_home_resolve(NULL, NULL, "/h", NULL, out, 8, err, sizeof(err)),
                   CHATC_STORE_INVALID);
}
END_TEST

START_TEST(default_from_env)
{
  char out[256];

  setenv("XDG_CONFIG_HOME", "/x/y", 1);
  ck_assert_int_eq(chatc_home_default(NULL, out, sizeof(out), err, sizeof(err)), 0);
  ck_assert_str_eq(out, "/x/y/secchat");
  unsetenv("XDG_CONFIG_HOME");
  setenv("HOME", "/hh", 1);
  ck_assert_int_eq(chatc_home_default(NULL, out, sizeof(out), err, sizeof(err)), 0);
  ck_assert_str_eq(out, "/hh/.config/secchat");
  /* HOME unset: the passwd entry. */
  unsetenv("HOME");
  ck_assert_int_eq(chatc_home_default(NULL, out, sizeof(out), err, sizeof(err)), 0);
  ck_assert_ptr_nonnull(strstr(out, "/.config/secchat"));
  ck_assert_int_eq(out[0], '/');
}
END_TEST

START_TEST(creates_0700_and_files_0600)
{
  chatc_store st;
  char path[700], buf[64];
  size_t len;

  umask(0); /* the modes must not depend on the umask */
  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), 0);
  ck_assert_uint_eq(mode_of(home), 0700);
  ck_assert_int_eq(chatc_store_write(&st, CHATC_FILE_STATE, "hello", 5, err, sizeof(err)), 0);
  snprintf(path, sizeof(path), "%s/state", home);
  ck_assert_uint_eq(mode_of(path), 0600);
  snprintf(path, sizeof(path), "%s/lock", home);
  ck_assert_uint_eq(mode_of(path), 0600);
  ck_assert_int_eq(chatc_store_read(&st, CHATC_FILE_STATE, buf, sizeof(buf), &len, err,
                                    sizeof(err)), 0);
  ck_assert_uint_eq(len, 5);
  ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
  /* Replace atomically; no temporary file remains. */
  ck_assert_int_eq(chatc_store_write(&st, CHATC_FILE_STATE, "world!", 6, err, sizeof(err)), 0);
  ck_assert_int_eq(chatc_store_read(&st, CHATC_FILE_STATE, buf, sizeof(buf), &len, err,
                                    sizeof(err)), 0);
  ck_assert_uint_eq(len, 6);
  ck_assert_int_eq(memcmp(buf, "world!", 6), 0);
  DIR *d = opendir(home);
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    ck_assert_msg(strncmp(de->d_name, ".tmp-", 5) != 0, "leftover %s", de->d_name);
  closedir(d);
  ck_assert_int_eq(chatc_store_read(&st, "absent", buf, sizeof(buf), &len, err, sizeof(err)),
                   CHATC_STORE_MISSING);
  ck_assert_int_eq(chatc_store_remove(&st, CHATC_FILE_STATE, err, sizeof(err)), 0);
  ck_assert_int_eq(chatc_store_remove(&st, CHATC_FILE_STATE, err, sizeof(err)),
                   CHATC_STORE_MISSING);
  chatc_store_close(&st);
}
END_TEST

START_TEST(refuses_loose_home)
{
  chatc_store st;
  char want[600];

  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), 0);
  chatc_store_close(&st);
  ck_assert_int_eq(chmod(home, 0755), 0);
  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), CHATC_STORE_UNSAFE);
  snprintf(want, sizeof(want), "refusing %s: mode 0755", home);
  ck_assert_msg(strstr(err, want) != NULL, "message: %s", err);
  ck_assert_int_eq(st.dirfd, -1);
  ck_assert_int_eq(chmod(home, 0710), 0);
  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), CHATC_STORE_UNSAFE);
  ck_assert_int_eq(chmod(home, 0700), 0);
  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), 0);
  chatc_store_close(&st);
}
END_TEST

START_TEST(refuses_loose_file)
{
  chatc_store st;
  char path[700], want[800], buf[32];
  size_t len;
  int fd;

  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), 0);
  snprintf(path, sizeof(path), "%s/identity", home);
  fd = open(path, O_WRONLY | O_CREAT, 0644);
  ck_assert_int_eq(write(fd, "secret", 6), 6);
  close(fd);
  ck_assert_int_eq(chmod(path, 0644), 0);
  memset(buf, 'A', sizeof(buf));
  ck_assert_int_eq(chatc_store_read(&st, CHATC_FILE_IDENTITY, buf, sizeof(buf), &len, err,
                                    sizeof(err)), CHATC_STORE_UNSAFE);
  snprintf(want, sizeof(want), "refusing %s: mode 0644", path);
  ck_assert_msg(strstr(err, want) != NULL, "message: %s", err);
  for (size_t i = 0; i < sizeof(buf); i++)
    ck_assert_int_eq(buf[i], 0); /* wiped on failure */
  /* A symbolic link in place of a file is refused, not followed. */
  unlink(path);
  ck_assert_int_eq(symlink("/etc/passwd", path), 0);
  ck_assert_int_eq(chatc_store_read(&st, CHATC_FILE_IDENTITY, buf, sizeof(buf), &len, err,
                                    sizeof(err)), CHATC_STORE_UNSAFE);
  ck_assert_ptr_nonnull(strstr(err, "symbolic link"));
  /* Names cannot leave the home. */
  ck_assert_int_eq(chatc_store_read(&st, "../x", buf, sizeof(buf), &len, err, sizeof(err)),
                   CHATC_STORE_INVALID);
  ck_assert_int_eq(chatc_store_write(&st, "..", "x", 1, err, sizeof(err)), CHATC_STORE_INVALID);
  chatc_store_close(&st);
}
END_TEST

START_TEST(refuses_foreign_owner)
{
  chatc_store st;
  char path[700], buf[8];
  size_t len;

  /* Needs root to give a file away; this suite runs as root in CI. */
  if (geteuid() != 0)
    return;
  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), 0);
  ck_assert_int_eq(chatc_store_write(&st, CHATC_FILE_STATE, "x", 1, err, sizeof(err)), 0);
  snprintf(path, sizeof(path), "%s/state", home);
  ck_assert_int_eq(chown(path, 65534, 65534), 0);
  ck_assert_int_eq(chatc_store_read(&st, CHATC_FILE_STATE, buf, sizeof(buf), &len, err,
                                    sizeof(err)), CHATC_STORE_UNSAFE);
  ck_assert_msg(strstr(err, "owned by uid 65534") != NULL, "message: %s", err);
  chatc_store_close(&st);
  ck_assert_int_eq(chown(home, 65534, 65534), 0);
  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), CHATC_STORE_UNSAFE);
  ck_assert_msg(strstr(err, "owned by uid 65534") != NULL, "message: %s", err);
}
END_TEST

START_TEST(refuses_symlinked_home)
{
  chatc_store st;
  char link[600];

  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), 0);
  chatc_store_close(&st);
  snprintf(link, sizeof(link), "%s/link", base);
  ck_assert_int_eq(symlink(home, link), 0);
  ck_assert_int_eq(chatc_store_open(&st, link, err, sizeof(err)), CHATC_STORE_UNSAFE);
}
END_TEST

START_TEST(size_caps)
{
  chatc_store st;
  char buf[8];
  uint8_t *p;
  size_t len;

  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), 0);
  ck_assert_int_eq(chatc_store_write(&st, "big", "0123456789", 10, err, sizeof(err)), 0);
  ck_assert_int_eq(chatc_store_read(&st, "big", buf, sizeof(buf), &len, err, sizeof(err)),
                   CHATC_STORE_INVALID);
  ck_assert_int_eq(chatc_store_read_alloc(&st, "big", 9, &p, &len, err, sizeof(err)),
                   CHATC_STORE_INVALID);
  ck_assert_ptr_null(p);
  ck_assert_int_eq(chatc_store_read_alloc(&st, "big", 10, &p, &len, err, sizeof(err)), 0);
  ck_assert_uint_eq(len, 10);
  ck_assert_int_eq(memcmp(p, "0123456789", 10), 0);
  free(p);
  chatc_store_close(&st);
}
END_TEST

START_TEST(lock_one_process_per_home)
{
  chatc_store a, b;
  char want[64];

  ck_assert_int_eq(chatc_store_open(&a, home, err, sizeof(err)), 0);
  /* flock is per open file description: a second open conflicts even in
   * the same process, exactly like a second chatc. */
  ck_assert_int_eq(chatc_store_open(&b, home, err, sizeof(err)), CHATC_STORE_LOCKED);
  snprintf(want, sizeof(want), "(pid %ld)", (long)getpid());
  ck_assert_msg(strstr(err, want) != NULL && strstr(err, home) != NULL, "message: %s", err);
  ck_assert_int_eq(b.dirfd, -1);
  chatc_store_close(&a);
  ck_assert_int_eq(chatc_store_open(&b, home, err, sizeof(err)), 0);
  chatc_store_close(&b);
}
END_TEST

static const char chat[] = "chat-0123";

static void append_n(chatc_store *st, int from, int to, size_t size)
{
  uint8_t rec[2048];

  for (int i = from; i < to; i++) {
    memset(rec, (int)(i & 0xff), size);
    rec[0] = (uint8_t)(i >> 8), rec[1] = (uint8_t)i;
    ck_assert_int_eq(chatc_hist_append(st, chat, sizeof(chat) - 1, rec, size, err, sizeof(err)),
                     0);
  }
}

/* Record indexes in the file, in order. */
static int load_ids(chatc_store *st, int *ids, int max)
{
  uint8_t *buf;
  const uint8_t *rec;
  size_t len, off = 0, rl;
  int n = 0;

  ck_assert_int_eq(chatc_hist_load(st, chat, sizeof(chat) - 1, &buf, &len, err, sizeof(err)), 0);
  while (chatc_hist_next(buf, len, &off, &rec, &rl) == 1) {
    ck_assert_int_lt(n, max);
    ids[n++] = rec[0] << 8 | rec[1];
  }
  free(buf);
  return n;
}

START_TEST(history_append_and_read)
{
  chatc_store st;
  char name[40], path[800];
  int ids[16];
  uint8_t *buf;
  size_t len;

  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), 0);
  ck_assert_int_eq(chatc_hist_load(&st, chat, sizeof(chat) - 1, &buf, &len, err, sizeof(err)),
                   CHATC_STORE_MISSING);
  append_n(&st, 0, 5, 100);
  ck_assert_int_eq(load_ids(&st, ids, 16), 5);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(ids[i], i);
  chatc_hist_name(chat, sizeof(chat) - 1, name);
  ck_assert_uint_eq(strlen(name), 36);
  ck_assert_ptr_null(strstr(name, "chat")); /* the id is not in the name */
  snprintf(path, sizeof(path), "%s/history", home);
  ck_assert_uint_eq(mode_of(path), 0700);
  snprintf(path, sizeof(path), "%s/history/%s", home, name);
  ck_assert_uint_eq(mode_of(path), 0600);
  /* Exact format: magic, then 4-byte big-endian length + bytes. */
  struct stat sb;
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_int_eq(sb.st_size, 8 + 5 * (4 + 100));
  ck_assert_int_eq(chatc_hist_append(&st, chat, sizeof(chat) - 1, "", 0, err, sizeof(err)),
                   CHATC_STORE_INVALID);
  chatc_store_close(&st);
}
END_TEST

START_TEST(history_cap_drops_oldest)
{
  chatc_store st;
  char name[40], path[800];
  int ids[200], n;
  struct stat sb;

  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), 0);
  chatc_store_set_hist_cap(&st, 4096);
  chatc_hist_name(chat, sizeof(chat) - 1, name);
  snprintf(path, sizeof(path), "%s/history/%s", home, name);
  for (int i = 0; i < 100; i++) {
    append_n(&st, i, i + 1, 100);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_le(sb.st_size, 4096); /* never over the cap after an append */
  }
  n = load_ids(&st, ids, 200);
  /* The newest records survive, contiguous, ending with the last one. */
  ck_assert_int_gt(n, 0);
  ck_assert_int_lt(n, 100);
  ck_assert_int_eq(ids[n - 1], 99);
  for (int i = 1; i < n; i++)
    ck_assert_int_eq(ids[i], ids[i - 1] + 1);
  /* Trimmed to 3/4 of the cap at most, then refilled: at least 3072/104 - 1 remain. */
  ck_assert_int_ge(n, 3072 / 104 - 1);
  ck_assert_uint_eq(mode_of(path), 0600);
  chatc_store_close(&st);
}
END_TEST

START_TEST(history_cap_lowered_later)
{
  chatc_store st;
  char name[40], path[800];
  int ids[400], n;
  struct stat sb;

  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), 0);
  chatc_store_set_hist_cap(&st, 1u << 20);
  append_n(&st, 0, 300, 200); /* ~61 KiB, under that cap */
  chatc_store_set_hist_cap(&st, 8192); /* e.g. --history-cap lowered */
  ck_assert_int_eq(load_ids(&st, ids, 400), 300); /* still readable */
  append_n(&st, 300, 301, 200);
  chatc_hist_name(chat, sizeof(chat) - 1, name);
  snprintf(path, sizeof(path), "%s/history/%s", home, name);
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_int_le(sb.st_size, 8192 - 8192 / 4);
  n = load_ids(&st, ids, 400);
  ck_assert_int_eq(ids[n - 1], 300);
  ck_assert_int_eq(n, (8192 - 8192 / 4 - 8) / 204);
  chatc_store_close(&st);
}
END_TEST

START_TEST(history_torn_tail)
{
  chatc_store st;
  char name[40], path[800];
  int ids[16];
  struct stat sb;

  ck_assert_int_eq(chatc_store_open(&st, home, err, sizeof(err)), 0);
  append_n(&st, 0, 3, 50);
  chatc_hist_name(chat, sizeof(chat) - 1, name);
  snprintf(path, sizeof(path), "%s/history/%s", home, name);
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_int_eq(truncate(path, sb.st_size - 5), 0); /* crash mid-append */
  ck_assert_int_eq(load_ids(&st, ids, 16), 2);
  append_n(&st, 3, 4, 50);
  ck_assert_int_eq(load_ids(&st, ids, 16), 3);
  ck_assert_int_eq(ids[2], 3);
  /* A file that is not a history file is refused, not overwritten. */
  int fd = open(path, O_WRONLY | O_TRUNC);
  ck_assert_int_eq(write(fd, "NOTMAGIC-data", 13), 13);
  close(fd);
  uint8_t *buf;
  size_t len;
  ck_assert_int_eq(chatc_hist_load(&st, chat, sizeof(chat) - 1, &buf, &len, err, sizeof(err)),
                   CHATC_STORE_INVALID);
  ck_assert_int_eq(chatc_hist_append(&st, chat, sizeof(chat) - 1, "x", 1, err, sizeof(err)),
                   CHATC_STORE_INVALID);
  chatc_store_close(&st);
}
END_TEST

START_TEST(history_iterator_bounds)
{
  static const uint8_t ok[] = "SCHIST1\n\x00\x00\x00\x02hi";
  static const uint8_t huge[] = "SCHIST1\n\xff\xff\xff\xff";
  const uint8_t *rec;
  size_t off = 0, rl;

  ck_assert_int_eq(chatc_hist_next(ok, sizeof(ok) - 1, &off, &rec, &rl), 1);
  ck_assert_uint_eq(rl, 2);
  ck_assert_int_eq(memcmp(rec, "hi", 2), 0);
  ck_assert_int_eq(chatc_hist_next(ok, sizeof(ok) - 1, &off, &rec, &rl), 0);
  off = 0;
  ck_assert_int_eq(chatc_hist_next(huge, sizeof(huge) - 1, &off, &rec, &rl), 0);
  off = 0;
  ck_assert_int_eq(chatc_hist_next((const uint8_t *)"nope", 4, &off, &rec, &rl), -1);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chatc_store");
  TCase *tc = tcase_create("core");
  SRunner *sr;
  int failed;

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, resolve_rules);
  tcase_add_test(tc, default_from_env);
  tcase_add_test(tc, creates_0700_and_files_0600);
  tcase_add_test(tc, refuses_loose_home);
  tcase_add_test(tc, refuses_loose_file);
  tcase_add_test(tc, refuses_foreign_owner);
  tcase_add_test(tc, refuses_symlinked_home);
  tcase_add_test(tc, size_caps);
  tcase_add_test(tc, lock_one_process_per_home);
  tcase_add_test(tc, history_append_and_read);
  tcase_add_test(tc, history_cap_drops_oldest);
  tcase_add_test(tc, history_cap_lowered_later);
  tcase_add_test(tc, history_torn_tail);
  tcase_add_test(tc, history_iterator_bounds);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
