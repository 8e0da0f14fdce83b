/* test_chatd_secfile.c: secret key files and the data directory (B3, D10). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chatd_testutil.h"
#include "secfile.h"

static char *dir;
static char path[512], err[1024];
static unsigned char buf[64];
static size_t len;

static void setup(void)
{
  dir = ctu_tmpdir();
  snprintf(path, sizeof path, "%s/key", dir);
}

static void teardown(void)
{
  ctu_rm_rf(dir);
  free(dir);
}

static int rd(void)
{
  return chatd_secfile_read(path, buf, sizeof buf, &len, err, sizeof err);
}

static int all_zero(const unsigned char *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return 0;
  return 1;
}

START_TEST(reads_private_file)
{
  ctu_write_file(path, "secret-bytes", 12, 0600);
  ck_assert_int_eq(rd(), CHATD_SECFILE_OK);
  ck_assert_uint_eq(len, 12);
  ck_assert(memcmp(buf, "secret-bytes", 12) == 0);
  ctu_write_file(path, "ro", 2, 0400); /* read-only for the owner is fine */
  ck_assert_int_eq(rd(), CHATD_SECFILE_OK);
}
END_TEST

START_TEST(refuses_group_or_other_bits)
{
  static const unsigned modes[] = {0644, 0640, 0604, 0660, 0606, 0610, 0601, 0700 | 0004, 0620};
  char expect[600];

  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    ctu_write_file(path, "k", 1, modes[i]);
    memset(buf, 0xaa, sizeof buf);
    ck_assert_int_eq(rd(), CHATD_SECFILE_UNSAFE);
    snprintf(expect, sizeof expect, "refusing %s: mode %04o, must be 0600", path, modes[i]);
    ck_assert_str_eq(err, expect);
    ck_assert(all_zero(buf, sizeof buf));
    ck_assert_uint_eq(len, 0);
  }
}
END_TEST

START_TEST(refuses_empty_and_oversize)
{
  char big[65];

  ctu_write_file(path, "", 0, 0600);
  ck_assert_int_eq(rd(), CHATD_SECFILE_INVALID);
  ck_assert_ptr_nonnull(strstr(err, "empty file"));
  ck_assert_ptr_nonnull(strstr(err, path));

  memset(big, 'x', sizeof big);
  ctu_write_file(path, big, sizeof big, 0600);
  ck_assert_int_eq(rd(), CHATD_SECFILE_INVALID);
  ck_assert_ptr_nonnull(strstr(err, "65 bytes, larger than the 64-byte limit"));
  ctu_write_file(path, big, 64, 0600); /* exactly the cap is fine */
  ck_assert_int_eq(rd(), CHATD_SECFILE_OK);
  ck_assert_uint_eq(len, 64);
}
END_TEST

START_TEST(refuses_symlink)
{
  char target[600];

  snprintf(target, sizeof target, "%s/real", dir);
  ctu_write_file(target, "k", 1, 0600);
  ck_assert_int_eq(symlink(target, path), 0);
  ck_assert_int_eq(rd(), CHATD_SECFILE_UNSAFE);
  ck_assert_ptr_nonnull(strstr(err, "symbolic link"));
}
END_TEST

START_TEST(refuses_non_regular)
{
  ck_assert_int_eq(mkfifo(path, 0600), 0);
  ck_assert_int_eq(rd(), CHATD_SECFILE_UNSAFE); /* and does not block */
  ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
  unlink(path);
  ck_assert_int_eq(mkdir(path, 0700), 0);
  ck_assert_int_eq(rd(), CHATD_SECFILE_UNSAFE);
  ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
}
END_TEST

START_TEST(missing_is_distinct)
{
  ck_assert_int_eq(rd(), CHATD_SECFILE_MISSING);
  ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

/* Owned by another user: as root we hand the file to nobody; otherwise a
 * root-owned private file is what this user cannot own. */
START_TEST(refuses_foreign_owner)
{
  if (geteuid() == 0) {
    ctu_write_file(path, "k", 1, 0600);
    ck_assert_int_eq(chown(path, 65534, 65534), 0);
    ck_assert_int_eq(rd(), CHATD_SECFILE_UNSAFE);
    ck_assert_ptr_nonnull(strstr(err, "owned by uid 65534, not by uid 0"));
  } else {
    /* Readable but root's: the owner check comes before the mode check. */
    snprintf(path, sizeof path, "/etc/passwd");
    ck_assert_int_eq(rd(), CHATD_SECFILE_UNSAFE);
    ck_assert_ptr_nonnull(strstr(err, "owned by uid 0"));
  }
}
END_TEST

START_TEST(atomic_write_is_0600)
{
  struct stat st;

  umask(0); /* must not widen the mode */
  ck_assert_int_eq(chatd_secfile_write(path, "abc", 3, 0, err, sizeof err), CHATD_SECFILE_OK);
  ck_assert_int_eq(lstat(path, &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  ck_assert_uint_eq(st.st_mode & 07777, 0600);
  ck_assert_int_eq(rd(), CHATD_SECFILE_OK);
  ck_assert_uint_eq(len, 3);
  ck_assert(memcmp(buf, "abc", 3) == 0);

  umask(0777); /* must not narrow it either */
  ck_assert_int_eq(chatd_secfile_write(path, "defg", 4, 1, err, sizeof err), CHATD_SECFILE_OK);
  ck_assert_int_eq(lstat(path, &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0600);
  ck_assert_int_eq(rd(), CHATD_SECFILE_OK);
  ck_assert_uint_eq(len, 4);
  umask(022);
}
END_TEST

START_TEST(write_noreplace_keeps_existing)
{
  ctu_write_file(path, "old", 3, 0600);
  ck_assert_int_eq(chatd_secfile_write(path, "new", 3, 0, err, sizeof err),
                   CHATD_SECFILE_EXISTS);
  ck_assert_ptr_nonnull(strstr(err, path));
  ck_assert_int_eq(rd(), CHATD_SECFILE_OK);
  ck_assert(memcmp(buf, "old", 3) == 0);
}
END_TEST

/* Nothing but the key file is left behind: no temporary files. */
START_TEST(write_leaves_no_temporaries)
{
  char *out;

  ck_assert_int_eq(chatd_secfile_write(path, "x", 1, 0, err, sizeof err), CHATD_SECFILE_OK);
  ck_assert_int_eq(chatd_secfile_write(path, "y", 1, 0, err, sizeof err), CHATD_SECFILE_EXISTS);
  ck_assert_int_eq(chatd_secfile_write(path, "z", 1, 1, err, sizeof err), CHATD_SECFILE_OK);
  char *argv[] = {"/bin/ls", "-A", dir, NULL};
  char *env[] = {NULL};
  ck_assert_int_eq(ctu_exec(argv, env, &out, NULL), 0);
  ck_assert_str_eq(out, "key\n");
  free(out);
}
END_TEST

/* The write never follows a symlink planted at the final name's place
 * for the temporary, and replacing a symlink replaces the link itself. */
START_TEST(write_replaces_symlink_not_target)
{
  char target[600];
  char *content;

  snprintf(target, sizeof target, "%s/victim", dir);
  ctu_write_file(target, "victim", 6, 0644);
  ck_assert_int_eq(symlink(target, path), 0);
  ck_assert_int_eq(chatd_secfile_write(path, "key", 3, 1, err, sizeof err), CHATD_SECFILE_OK);
  content = ctu_read_file(target, NULL);
  ck_assert_str_eq(content, "victim");
  free(content);
  ck_assert_int_eq(rd(), CHATD_SECFILE_OK);
}
END_TEST

START_TEST(datadir_created_0700_with_parents)
{
  char dd[600], parent[600];
  struct stat st;

  umask(0);
  snprintf(parent, sizeof parent, "%s/share", dir);
  snprintf(dd, sizeof dd, "%s/share/secchat-chatd", dir);
  ck_assert_int_eq(chatd_secfile_datadir(dd, err, sizeof err), CHATD_SECFILE_OK);
  ck_assert_int_eq(stat(dd, &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
  ck_assert_uint_eq(st.st_mode & 07777, 0700);
  ck_assert_int_eq(stat(parent, &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0700);
  /* Existing and private: fine again. */
  ck_assert_int_eq(chatd_secfile_datadir(dd, err, sizeof err), CHATD_SECFILE_OK);
  umask(022);
}
END_TEST

START_TEST(datadir_refused_when_open)
{
  static const unsigned modes[] = {0755, 0750, 0705, 0770, 0701, 0710};
  char dd[600], expect[700];

  snprintf(dd, sizeof dd, "%s/data", dir);
  ck_assert_int_eq(mkdir(dd, 0700), 0);
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    ck_assert_int_eq(chmod(dd, modes[i]), 0);
    ck_assert_int_eq(chatd_secfile_datadir(dd, err, sizeof err), CHATD_SECFILE_UNSAFE);
    snprintf(expect, sizeof expect, "refusing %s: mode %04o, must be 0700", dd, modes[i]);
    ck_assert_str_eq(err, expect);
  }
  /* A file where the directory should be. */
  ck_assert_int_eq(rmdir(dd), 0);
  ctu_write_file(dd, "x", 1, 0600);
  ck_assert_int_ne(chatd_secfile_datadir(dd, err, sizeof err), CHATD_SECFILE_OK);
  ck_assert_ptr_nonnull(strstr(err, dd));
}
END_TEST

START_TEST(datadir_foreign_owner)
{
  char dd[600];

  if (geteuid() != 0) {
    ck_assert_int_eq(chatd_secfile_datadir("/etc", err, sizeof err), CHATD_SECFILE_UNSAFE);
    ck_assert_ptr_nonnull(strstr(err, "owned by uid 0"));
    return;
  }
  snprintf(dd, sizeof dd, "%s/data", dir);
  ck_assert_int_eq(mkdir(dd, 0700), 0);
  ck_assert_int_eq(chown(dd, 65534, 65534), 0);
  ck_assert_int_eq(chatd_secfile_datadir(dd, err, sizeof err), CHATD_SECFILE_UNSAFE);
  ck_assert_ptr_nonnull(strstr(err, "owned by uid 65534"));
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("chatd_secfile");
  TCase *tc = tcase_create("secfile");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, reads_private_file);
  tcase_add_test(tc, refuses_group_or_other_bits);
  tcase_add_test(tc, refuses_empty_and_oversize);
  tcase_add_test(tc, refuses_symlink);
  tcase_add_test(tc, refuses_non_regular);
  tcase_add_test(tc, missing_is_distinct);
  tcase_add_test(tc, refuses_foreign_owner);
  tcase_add_test(tc, atomic_write_is_0600);
  tcase_add_test(tc, write_noreplace_keeps_existing);
  tcase_add_test(tc, write_leaves_no_temporaries);
  tcase_add_test(tc, write_replaces_symlink_not_target);
  tcase_add_test(tc, datadir_created_0700_with_parents);
  tcase_add_test(tc, datadir_refused_when_open);
  tcase_add_test(tc, datadir_foreign_owner);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return ctu_run(suite());
}
