/* helper_token: verify a token with libsecchat from the command line, for
 * the Python interop tests (tests/python/test_jwt_interop.py).
 *
 *   helper_token verify PUBLIC_PEM_FILE ISSUER NOW < token
 *
 * Prints "ok <sub>" (exit 0) or "reject <reason>" (exit 1); usage or I/O
 * errors exit 2. The token is read raw from stdin (up to 16 KiB; no
 * trimming, so a trailing newline is part of the token). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <secchat/secchat.h>

static char *read_all(FILE *f, size_t cap, size_t *len)
{
  char *buf = malloc(cap + 1);
  if (!buf)
    return NULL;
  *len = fread(buf, 1, cap, f);
  buf[*len] = 0;
  return buf;
}

int main(int argc, char **argv)
{
  if (argc != 5 || strcmp(argv[1], "verify") != 0) {
    fprintf(stderr, "usage: %s verify PUBLIC_PEM_FILE ISSUER NOW < token\n", argv[0]);
    return 2;
  }
  if (secchat_init() != 0)
    return 2;
  FILE *f = fopen(argv[2], "rb");
  if (!f)
    return 2;
  size_t pem_len, tok_len;
  char *pem = read_all(f, 16384, &pem_len);
  fclose(f);
  char *tok = read_all(stdin, 16384, &tok_len);
  if (!pem || !tok)
    return 2;
  secchat_token_verifier *v = NULL;
  int rc = secchat_token_verifier_new(&v, pem, pem_len, argv[3], 0);
  if (rc) {
    fprintf(stderr, "verifier: %s\n", secchat_strerror(rc));
    return 2;
  }
  secchat_token_claims c;
  int reason = -1;
  rc = secchat_token_verify(v, tok, tok_len, strtoll(argv[4], NULL, 10), &c, &reason);
  if (rc == 0)
    printf("ok %s\n", c.uid_str);
  else
    printf("reject %d\n", reason);
  secchat_token_verifier_free(v);
  free(pem);
  free(tok);
  return rc == 0 ? 0 : 1;
}
