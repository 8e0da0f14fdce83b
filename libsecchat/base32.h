/* base32.h: RFC 4648 base32, lowercase alphabet, no padding (internal).
 *
 * This is how secchat shows user ids: the 20-byte uid encodes to exactly 32
 * characters. Decoding is strict: only "a-z2-7" are accepted (no upper
 * case, no padding, no whitespace) and the unused low bits of the last
 * character must be zero, so every byte string has exactly one encoding. */
#ifndef SC_BASE32_H
#define SC_BASE32_H

#include <stddef.h>
#include <stdint.h>

/* Characters needed to encode len bytes (without the terminating NUL). */
#define SC_BASE32_LEN(len) (((len) * 8 + 4) / 5)

/* Encode len bytes into out as a NUL-terminated string. cap must be at
 * least SC_BASE32_LEN(len) + 1. Returns the string length (>= 0) or
 * SECCHAT_ERR_BUFFER_TOO_SMALL / SECCHAT_ERR_INVALID_ARGUMENT. */
int sc_base32_encode(char *out, size_t cap, const uint8_t *in, size_t len);

/* Decode exactly len characters of in (NUL not required) into out. Returns
 * the byte count (>= 0) or SECCHAT_ERR_PROTOCOL for any character outside
 * the alphabet, an impossible length or non-zero trailing bits, and
 * SECCHAT_ERR_BUFFER_TOO_SMALL when cap is too small. */
int sc_base32_decode(uint8_t *out, size_t cap, const char *in, size_t len);

#endif
