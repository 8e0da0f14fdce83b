/* fuzz_frame.c: libFuzzer harness for the frame layer (libsecchat/codec.h).
 *
 * Input layout: byte 0 picks the chunking of the rest (0 = all at once,
 * else chunk sizes cycle through 1..byte0 driven by the input itself); the
 * rest is a TCP stream fed through sc_deframer. Every yielded message is
 * decoded as a frame body directly and, if it opens as a padded plaintext
 * of records, each record as a frame body. Any successfully decoded frame must re-encode to the very same
 * bytes (canonical round trip): a mismatch aborts. Errors must be
 * documented codes; anything else aborts. The corpus in corpus/frame/ holds
 * valid frames of every type and the A1-A14 samples. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <secchat/secchat.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t again[SECCHAT_MAX_FRAME_BODY];

static void check_body(const uint8_t *body, size_t len)
{
  sc_frame f;
  int rc = sc_frame_decode(&f, body, len);
  if (rc == 0) {
    secchat_ssize n = sc_frame_encode(&f, again, sizeof again);
    if (n != (secchat_ssize)len || memcmp(again, body, len) != 0) {
      fprintf(stderr, "re-encode mismatch: %lld vs %zu bytes (%s)\n", (long long)n, len,
              secchat_error_name((int)n));
      abort();
    }
    return;
  }
  /* Only the codec range may come out of the decoder; never NOMEM etc. */
  if (rc > SECCHAT_ERR_PROTOCOL || rc <= -200) {
    fprintf(stderr, "unexpected decode error %s\n", secchat_error_name(rc));
    abort();
  }
}

static void check_message(const uint8_t *m, size_t len)
{
  check_body(m, len);
  const uint8_t *body;
  size_t blen, used = 0;
  sc_records r;
  int rc = sc_records_open(&r, m, len);
  if (rc > 0) {
    /* every record inside the plaintext, the padding minimal, as many
     * records as counted */
    int n = 0;
    while (sc_records_next(&r, &body, &blen)) {
      if (blen == 0 || blen > SECCHAT_MAX_FRAME_BODY || body < m + 2 || body + blen > m + len)
        abort();
      used += 2 + blen;
      n++;
      check_body(body, blen);
    }
    if (n != rc || sc_pad_size(used) != len)
      abort();
  } else if (rc != SECCHAT_ERR_BAD_PADDING) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  unsigned mode = data[0];
  data++;
  size--;
  sc_deframer d;
  if (sc_deframer_init(&d, 0) != 0)
    abort();
  size_t pos = 0, k = 0;
  while (pos < size) {
    size_t chunk = size - pos;
    if (mode != 0) /* chunk sizes from the input: 1..mode */
      chunk = 1 + (data[k++ % size] % mode);
    if (chunk > size - pos)
      chunk = size - pos;
    size_t off = 0;
    while (off < chunk) {
      const uint8_t *m;
      size_t ml;
      secchat_ssize n = sc_deframer_feed(&d, data + pos + off, chunk - off, &m, &ml);
      if (n < 0) {
        if (n != SECCHAT_ERR_FRAME_EMPTY && n != SECCHAT_ERR_FRAME_TOO_LARGE)
          abort();
        /* Sticky: the same error again, then stop. */
        if (sc_deframer_feed(&d, data, size, &m, &ml) != n)
          abort();
        sc_deframer_free(&d);
        return 0;
      }
      if (n == 0 || (size_t)n > chunk - off)
        abort();
      off += (size_t)n;
      if (m != NULL) {
        if (ml == 0 || ml > SECCHAT_MAX_WIRE_MESSAGE)
          abort();
        check_message(m, ml);
      }
    }
    pos += chunk;
  }
  sc_deframer_free(&d);
  return 0;
}
