/* testutil.h: small helpers shared by the Check tests. */
#ifndef SC_TESTUTIL_H
#define SC_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include <secchat/secchat.h>

/* Decode hex into out (cap bytes); returns the byte count or -1. */
long tu_unhex(const char *hex, uint8_t *out, size_t cap);

/* Run a Check suite; returns the process exit status. Honours CK_FORK. */
int tu_run(Suite *s);

/* Read a whole file into a malloc'd, NUL-terminated buffer (NULL on
 * error); *len receives its size. */
char *tu_read_file(const char *path, size_t *len);

/* A token for name with the keys of id, issued now_ms with the server key
 * (as a hostile relay can) and a fixed handshake hash; written to out
 * (SECCHAT_MAX_TOKEN_BYTES + 1 bytes). Returns its length; Check-asserts
 * success. */
size_t tu_mint_token(const secchat_server_key *key, const char *issuer,
                     const secchat_identity *id, const char *name, uint64_t now_ms, char *out);

/* The state of chat in c (as secchat_client_chat_at: 1 invited, 2 joining,
 * 3 active, 4 left), 0 if c does not know it. */
int tu_chat_state(const secchat_client *c, const uint8_t chat[16]);

#endif
