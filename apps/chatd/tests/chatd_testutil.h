/* chatd_testutil.h: helpers shared by the chatd platform tests. */
#ifndef CHATD_TESTUTIL_H
#define CHATD_TESTUTIL_H

#include <netinet/in.h>
#include <stddef.h>

#include <check.h>

/* Run a suite (honours CK_FORK); returns the process exit status. */
int ctu_run(Suite *s);

/* A fresh private directory (malloc'd path); ctu_rm_rf() removes it. */
char *ctu_tmpdir(void);
void ctu_rm_rf(const char *dir);

/* Whole file, NUL-terminated, malloc'd; NULL on error. */
char *ctu_read_file(const char *path, size_t *len);

/* Write a file with the given mode (exactly, whatever the umask). */
void ctu_write_file(const char *path, const char *data, size_t len, unsigned mode);

/* Run argv[0] with argv and envp (NULL-terminated), capture stdout and
 * stderr (malloc'd, NUL-terminated; NULL pointers to discard). Returns the
 * exit status, or -1 if it did not exit normally. */
int ctu_exec(char *const argv[], char *const envp[], char **out, char **err);

/* Sockets on 127.0.0.1 with a kernel-chosen free port; *addr receives the
 * bound address. ctu_tcp_listener() listens with the given backlog. */
int ctu_tcp_listener(struct sockaddr_in *addr, int backlog);
int ctu_udp_socket(struct sockaddr_in *addr);

/* A 127.0.0.1 port that was free a moment ago (nothing listens on it). */
unsigned short ctu_free_port(void);

/* CPU time (user + system) of the whole process so far, in ms. */
unsigned long long ctu_cpu_ms(void);

/* Monotonic milliseconds. */
unsigned long long ctu_now_ms(void);

#endif
