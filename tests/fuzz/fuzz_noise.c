/* fuzz_noise: peer-controlled bytes into the Noise handshake readers and
 * the explicit-nonce transport. Invariants: no crash / sanitizer report; a
 * failed read leaves the handshake FAILED and wiped; a failed datagram
 * decrypt leaves its state byte-for-byte unchanged. First input byte picks
 * the target. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <secchat/secchat.h>

#include "noise.h"
#include "rng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[SC_NOISE_MAX_MESSAGE + 64];

static void check_failed(const sc_noise_handshake *hs, int rc)
{
  if (rc == 0)
    return;
  sc_noise_handshake z;
  memset(&z, 0, sizeof z);
  z.action = SC_NOISE_ACTION_FAILED;
  if (memcmp(hs, &z, sizeof z) != 0)
    abort();
}

static void fuzz_handshake(int which, const uint8_t *d, size_t n)
{
  static const uint8_t a_sk[32] = {1}, b_sk[32] = {2};
  uint8_t b_pk[32];
  crypto_scalarmult_base(b_pk, b_sk);
  sc_noise_handshake hs;
  size_t len;
  int rc;
  switch (which) {
  case 0: /* XX responder reads message 1, then answers */
    sc_noise_handshake_init(&hs, SC_NOISE_XX, 0, NULL, 0, b_sk, NULL);
    rc = sc_noise_handshake_read(&hs, d, n, out, sizeof out, &len);
    check_failed(&hs, rc);
    if (rc == 0)
      check_failed(&hs, sc_noise_handshake_write(&hs, NULL, 0, out, sizeof out, &len));
    break;
  case 1: /* XX initiator reads message 2 */
    sc_noise_handshake_init(&hs, SC_NOISE_XX, 1, NULL, 0, a_sk, NULL);
    sc_noise_handshake_write(&hs, NULL, 0, out, sizeof out, &len);
    check_failed(&hs, sc_noise_handshake_read(&hs, d, n, out, sizeof out, &len));
    break;
  case 2: /* IK responder reads message 1 */
    sc_noise_handshake_init(&hs, SC_NOISE_IK, 0, NULL, 0, b_sk, NULL);
    check_failed(&hs, sc_noise_handshake_read(&hs, d, n, out, sizeof out, &len));
    break;
  default: /* IK initiator reads message 2 */
    sc_noise_handshake_init(&hs, SC_NOISE_IK, 1, NULL, 0, a_sk, b_pk);
    sc_noise_handshake_write(&hs, NULL, 0, out, sizeof out, &len);
    check_failed(&hs, sc_noise_handshake_read(&hs, d, n, out, sizeof out, &len));
  }
  sc_noise_handshake_wipe(&hs);
}

/* A sequence of datagrams: [u16 len][bytes]...; the state must not change
 * on any failure. The key is fixed, so the fuzzer cannot forge tags: this
 * exercises the length / session / window paths. */
static void fuzz_dgram(const uint8_t *d, size_t n)
{
  sc_noise_transport t;
  static const uint8_t k1[32] = {7}, k2[32] = {8}, h[32] = {9};
  sc_noise_cipher_init(&t.tx, k1);
  sc_noise_cipher_init(&t.rx, k2);
  sc_noise_dgram dg, copy;
  if (sc_noise_dgram_init(&dg, &t, h) != 0)
    abort();
  while (n >= 2) {
    size_t l = (size_t)d[0] << 8 | d[1];
    d += 2;
    n -= 2;
    if (l > n)
      l = n;
    size_t pl;
    copy = dg;
    int rc = sc_noise_dgram_decrypt(&dg, d, l, out, sizeof out, &pl, NULL);
    if (rc != 0 && memcmp(&copy, &dg, sizeof dg) != 0)
      abort();
    d += l;
    n -= l;
  }
  sc_noise_dgram_wipe(&dg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int inited;
  static sc_test_rng rng;
  static const uint8_t seed[32] = {42};
  if (!inited) {
    if (secchat_init() != 0)
      abort();
    sc_rng_set(sc_test_rng_fn, &rng);
    inited = 1;
  }
  sc_test_rng_init(&rng, seed); /* same ephemerals every run: reproducible */
  if (size < 1)
    return 0;
  if (data[0] < 4)
    fuzz_handshake(data[0], data + 1, size - 1);
  else
    fuzz_dgram(data + 1, size - 1);
  return 0;
}
