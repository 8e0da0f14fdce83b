/* testutil.c: see testutil.h. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <secchat/secchat.h>

static int hexval(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long tu_unhex(const char *hex, uint8_t *out, size_t cap)
{
  size_t n = 0;
  while (hex[0] && hex[1]) {
    int hi = hexval(hex[0]), lo = hexval(hex[1]);
    if (hi < 0 || lo < 0 || n >= cap)
      return -1;
    out[n++] = (uint8_t)(hi << 4 | lo);
    hex += 2;
  }
  return hex[0] ? -1 : (long)n;
}

int tu_run(Suite *s)
{
  if (secchat_init() != 0) {
    fprintf(stderr, "secchat_init failed\n");
    return 1;
  }
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}

char *tu_read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
  long sz = ftell(f);
  if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return NULL; }
  char *buf = malloc((size_t)sz + 1);
  if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) { free(buf); buf = NULL; }
  fclose(f);
  if (buf) { buf[sz] = 0; if (len) *len = (size_t)sz; }
  return buf;
}

size_t tu_mint_token(const secchat_server_key *key, const char *issuer,
                     const secchat_identity *id, const char *name, uint64_t now_ms, char *out)
{
  uint8_t hh[32], proof[64];
  memset(hh, 0x5a, sizeof hh);
  ck_assert_int_eq(secchat_token_registration_proof(id, name, strlen(name), hh, proof), 0);
  size_t tl = 0;
  int reason = 0;
  ck_assert_int_eq(secchat_token_issue(key, issuer, name, strlen(name),
                                       secchat_identity_sign_public_key(id),
                                       secchat_identity_dh_public_key(id),
                                       secchat_identity_dh_sig(id), proof, hh,
                                       secchat_identity_dh_public_key(id), (int64_t)(now_ms / 1000),
                                       0, out, SECCHAT_MAX_TOKEN_BYTES + 1, &tl, &reason),
                   0);
  return tl;
}

int tu_chat_state(const secchat_client *c, const uint8_t chat[16])
{
  for (size_t i = 0; i < secchat_client_chat_count(c); i++) {
    uint8_t id[16];
    int st = 0;
    ck_assert_int_eq(secchat_client_chat_at(c, i, id, &st, NULL, NULL), 0);
    if (memcmp(id, chat, 16) == 0)
      return st;
  }
  return 0;
}
