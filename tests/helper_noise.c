/* helper_noise: drives one side of a libsecchat Noise session over
 * stdin/stdout, one command per line, for the interop tests in
 * tests/python/test_noise_interop.py (peer: python3-dissononce).
 *
 * Hex arguments; "-" or nothing means empty. Every command answers one line:
 * "OK [values]" or "ERR <SECCHAT_ERR_NAME>".
 *   INIT <XX|IK> <init|resp> <s_sk> <rs|-> <prologue|->
 *   EPH <e_sk>         fix the next ephemeral (test-only setter)
 *   W <payload>        -> OK <handshake message>
 *   R <message>        -> OK <payload>
 *   HASH               -> OK <handshake hash so far>
 *   RS                 -> OK <remote static>
 *   SPLIT              -> OK <final handshake hash>   (in-order transport)
 *   E <plaintext>      -> OK <transport message>
 *   D <message>        -> OK <plaintext>
 *   REKEY <tx|rx>      -> OK
 *   DGRAM              -> OK <session id>   (explicit-nonce transport)
 *   DE <plaintext>     -> OK <message>
 *   DD <message>       -> OK <n> <plaintext>
 *   QUIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "noise.h"

#define LINE_MAX_BYTES (2 * SC_NOISE_MAX_MESSAGE + 4096)

static char line[LINE_MAX_BYTES];
static char hexout[2 * SC_NOISE_MAX_MESSAGE + 3];
static uint8_t in[SC_NOISE_MAX_MESSAGE + 1], out[SC_NOISE_MAX_MESSAGE + 64];

static sc_noise_handshake hs;
static sc_noise_transport tr;
static sc_noise_dgram dg;
static uint8_t final_h[32];

/* Parse hex ("-" or "" = empty) into buf; -1 on bad input. */
static long unhex(const char *s, uint8_t *buf, size_t cap)
{
  size_t n = 0;
  if (!s || strcmp(s, "-") == 0)
    return 0;
  if (sodium_hex2bin(buf, cap, s, strlen(s), NULL, &n, NULL) != 0)
    return -1;
  return (long)n;
}

static void ok_hex(const uint8_t *b, size_t n)
{
  sodium_bin2hex(hexout, sizeof hexout, b, n);
  printf("OK %s\n", hexout);
}

static void err(int rc)
{
  printf("ERR %s\n", secchat_error_name(rc));
}

static int cmd_init(char *args)
{
  char *pat = strtok(args, " "), *role = strtok(NULL, " "), *s = strtok(NULL, " ");
  char *rs = strtok(NULL, " "), *pro = strtok(NULL, " ");
  uint8_t sk[32], rpk[32], prologue[256];
  if (!pat || !role || unhex(s, sk, 32) != 32)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  long rn = unhex(rs, rpk, 32), pn = unhex(pro, prologue, sizeof prologue);
  if ((rn != 0 && rn != 32) || pn < 0)
    return SECCHAT_ERR_INVALID_ARGUMENT;
  sc_noise_pattern p = strcmp(pat, "IK") == 0 ? SC_NOISE_IK : SC_NOISE_XX;
  int rc = sc_noise_handshake_init(&hs, p, strcmp(role, "init") == 0, prologue, (size_t)pn, sk,
                                   rn ? rpk : NULL);
  sodium_memzero(sk, sizeof sk);
  return rc;
}

static void dispatch(char *cmd, char *arg)
{
  size_t n;
  int rc;
  long len = unhex(arg, in, sizeof in);
  if (len < 0 && strcmp(cmd, "INIT") != 0 && strcmp(cmd, "REKEY") != 0) {
    err(SECCHAT_ERR_INVALID_ARGUMENT);
    return;
  }
  if (strcmp(cmd, "INIT") == 0) {
    rc = arg ? cmd_init(arg) : SECCHAT_ERR_INVALID_ARGUMENT;
    rc ? err(rc) : (void)printf("OK\n");
  } else if (strcmp(cmd, "EPH") == 0) {
    rc = len == 32 ? sc_noise_handshake_fix_ephemeral(&hs, in) : SECCHAT_ERR_INVALID_ARGUMENT;
    rc ? err(rc) : (void)printf("OK\n");
  } else if (strcmp(cmd, "W") == 0) {
    rc = sc_noise_handshake_write(&hs, in, (size_t)len, out, sizeof out, &n);
    rc ? err(rc) : ok_hex(out, n);
  } else if (strcmp(cmd, "R") == 0) {
    rc = sc_noise_handshake_read(&hs, in, (size_t)len, out, sizeof out, &n);
    rc ? err(rc) : ok_hex(out, n);
  } else if (strcmp(cmd, "HASH") == 0) {
    rc = sc_noise_handshake_hash(&hs, out);
    rc ? err(rc) : ok_hex(out, 32);
  } else if (strcmp(cmd, "RS") == 0) {
    rc = sc_noise_handshake_remote_static(&hs, out);
    rc ? err(rc) : ok_hex(out, 32);
  } else if (strcmp(cmd, "SPLIT") == 0) {
    rc = sc_noise_handshake_split(&hs, &tr, final_h);
    rc ? err(rc) : ok_hex(final_h, 32);
  } else if (strcmp(cmd, "E") == 0) {
    /* in place: the relay's hot path */
    memcpy(out, in, (size_t)len);
    rc = sc_noise_transport_encrypt(&tr, out, (size_t)len, out, sizeof out, &n);
    rc ? err(rc) : ok_hex(out, n);
  } else if (strcmp(cmd, "D") == 0) {
    rc = sc_noise_transport_decrypt(&tr, in, (size_t)len, in, sizeof in, &n);
    rc ? err(rc) : ok_hex(in, n);
  } else if (strcmp(cmd, "REKEY") == 0) {
    rc = sc_noise_cipher_rekey(arg && strcmp(arg, "rx") == 0 ? &tr.rx : &tr.tx);
    rc ? err(rc) : (void)printf("OK\n");
  } else if (strcmp(cmd, "DGRAM") == 0) {
    rc = sc_noise_dgram_init(&dg, &tr, final_h);
    sc_noise_dgram_session_id(&dg, out);
    rc ? err(rc) : ok_hex(out, SC_NOISE_SID_BYTES);
  } else if (strcmp(cmd, "DE") == 0) {
    memcpy(out + SC_NOISE_DGRAM_HEADER_BYTES, in, (size_t)len);
    rc = sc_noise_dgram_encrypt(&dg, out + SC_NOISE_DGRAM_HEADER_BYTES, (size_t)len, out,
                                sizeof out, &n);
    rc ? err(rc) : ok_hex(out, n);
  } else if (strcmp(cmd, "DD") == 0) {
    uint64_t nn = 0;
    rc = sc_noise_dgram_decrypt(&dg, in, (size_t)len, out, sizeof out, &n, &nn);
    if (rc) {
      err(rc);
    } else {
      sodium_bin2hex(hexout, sizeof hexout, out, n);
      printf("OK %llu %s\n", (unsigned long long)nn, hexout);
    }
  } else {
    err(SECCHAT_ERR_INVALID_ARGUMENT);
  }
}

int main(void)
{
  if (secchat_init() != 0) {
    fprintf(stderr, "secchat_init failed\n");
    return 1;
  }
  while (fgets(line, sizeof line, stdin)) {
    size_t l = strlen(line);
    if (l == 0 || line[l - 1] != '\n') {
      err(SECCHAT_ERR_TOO_LONG);
      fflush(stdout);
      return 1;
    }
    line[--l] = 0;
    if (l && line[l - 1] == '\r')
      line[--l] = 0;
    char *sp = strchr(line, ' ');
    char *arg = NULL;
    if (sp) {
      *sp = 0;
      arg = sp + 1;
    }
    if (strcmp(line, "QUIT") == 0)
      break;
    dispatch(line, arg);
    fflush(stdout);
  }
  sc_noise_handshake_wipe(&hs);
  sc_noise_transport_wipe(&tr);
  sc_noise_dgram_wipe(&dg);
  return 0;
}
