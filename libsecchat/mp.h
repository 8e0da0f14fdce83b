/* mp.h: strict canonical msgpack, the only way bytes from peers are read
 * (internal).
 *
 * msgpack-c 4.0 trusts declared counts (it allocates for them before the
 * bytes arrive), reports deep nesting as out-of-memory and accepts
 * non-canonical encodings. So nothing from a peer reaches msgpack-c's
 * unpacker: every object is first checked by sc_mp_validate(), a bounded
 * single pass with no allocation, and then read field by field with the
 * typed sc_mp_read_* cursor functions, which point into the caller's buffer
 * (zero copy). Packing uses msgpack-c's packer, which always emits the
 * shortest encoding, writing into a caller-owned fixed buffer.
 *
 * Accepted subset (everything else is SECCHAT_ERR_FORBIDDEN_TYPE): nil,
 * bool, positive and negative integers, str, bin, array. Maps, floats and
 * ext types never appear in secchat. The reserved byte 0xc1 is
 * SECCHAT_ERR_INVALID_BYTE.
 *
 * Canonical means: every integer, string, binary and array header uses the
 * shortest form that can hold its value (a non-negative integer is always
 * encoded as unsigned; a negative one only when it is < 0). Anything else is
 * SECCHAT_ERR_NONCANONICAL. */
#ifndef SC_MP_H
#define SC_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SC_MP_MAX_DEPTH 8 /* containers nested deeper are SECCHAT_ERR_DEPTH */

/* Check that buf[0, len) holds exactly one valid canonical object of the
 * accepted subset, nested at most max_depth containers deep (max_depth <=
 * SC_MP_MAX_DEPTH, else SECCHAT_ERR_INVALID_ARGUMENT). Every declared length
 * or count is checked against the bytes that remain before it is trusted.
 * Strings must be valid UTF-8 (no overlong forms, no surrogates, nothing
 * above U+10FFFF) without U+0000. Returns 0 or the first error, scanning
 * left to right:
 *   SECCHAT_ERR_TRUNCATED       empty input, a header cut short, or a
 *                               str/bin length > bytes left
 *   SECCHAT_ERR_COUNT_OVERFLOW  the elements owed by all open arrays
 *                               exceed the bytes left (each needs >= 1)
 *   SECCHAT_ERR_DEPTH           an array nested deeper than max_depth
 *   SECCHAT_ERR_NONCANONICAL    a header not in its shortest form
 *   SECCHAT_ERR_TRAILING_BYTES  bytes after the object
 *   SECCHAT_ERR_FORBIDDEN_TYPE  map, float, ext (detected on the type byte,
 *                               before any length is read)
 *   SECCHAT_ERR_INVALID_BYTE    0xc1
 *   SECCHAT_ERR_BAD_UTF8, SECCHAT_ERR_NUL_IN_STRING
 * Never allocates; iterative (no recursion); runs in O(len). */
int sc_mp_validate(const uint8_t *buf, size_t len, unsigned max_depth);

/* Cursor over a validated object. The read functions check the type of the
 * next element and advance past it; on error (SECCHAT_ERR_SCHEMA for a
 * wrong type, SECCHAT_ERR_BAD_LENGTH for a str/bin outside [min, max]) the
 * cursor is left unchanged. Pointers returned point into the buffer.
 * They re-check bounds and canonical headers themselves (so reading
 * unvalidated bytes cannot read out of bounds), but they do not check
 * UTF-8, NUL or trailing bytes: run sc_mp_validate() on the whole object
 * first. read_uint accepts only unsigned forms (a negative value is
 * SECCHAT_ERR_SCHEMA); read_int accepts any integer in int64 range. */
typedef struct sc_mp_reader {
  const uint8_t *p;
  const uint8_t *end;
} sc_mp_reader;

void sc_mp_reader_init(sc_mp_reader *r, const uint8_t *buf, size_t len);
int sc_mp_read_array(sc_mp_reader *r, uint32_t *count);
int sc_mp_read_uint(sc_mp_reader *r, uint64_t *v);
int sc_mp_read_int(sc_mp_reader *r, int64_t *v);
int sc_mp_read_bool(sc_mp_reader *r, bool *v);
int sc_mp_read_nil(sc_mp_reader *r);
/* str: UTF-8 without NUL (checked by validate), NOT NUL-terminated. */
int sc_mp_read_str(sc_mp_reader *r, const char **s, size_t *len, size_t min, size_t max);
int sc_mp_read_bin(sc_mp_reader *r, const uint8_t **b, size_t *len, size_t min, size_t max);
/* bin of exactly len bytes (keys, signatures, ids). */
int sc_mp_read_bin_exact(sc_mp_reader *r, const uint8_t **b, size_t len);
/* Skip one complete element of any accepted type. */
int sc_mp_skip(sc_mp_reader *r);
/* 1 if the cursor consumed the whole buffer. */
int sc_mp_at_end(const sc_mp_reader *r);

/* Writer: msgpack-c's packer (shortest encodings) over a caller-owned
 * fixed buffer. A write that does not fit is not performed and latches
 * `overflow`; every later write is then dropped too, so check once at the
 * end with sc_mp_writer_finish(). The struct holds no msgpack-c state (a
 * packer is built per call), so it may be copied. */
typedef struct sc_mp_writer {
  uint8_t *buf;
  size_t cap;
  size_t len;
  int overflow;
} sc_mp_writer;

void sc_mp_writer_init(sc_mp_writer *w, uint8_t *buf, size_t cap);
void sc_mp_write_array(sc_mp_writer *w, uint32_t count);
void sc_mp_write_uint(sc_mp_writer *w, uint64_t v);
void sc_mp_write_int(sc_mp_writer *w, int64_t v);
void sc_mp_write_bool(sc_mp_writer *w, bool v);
void sc_mp_write_nil(sc_mp_writer *w);
void sc_mp_write_str(sc_mp_writer *w, const char *s, size_t len);
void sc_mp_write_bin(sc_mp_writer *w, const uint8_t *b, size_t len);
/* Returns the byte count written, or SECCHAT_ERR_BUFFER_TOO_SMALL. */
int64_t sc_mp_writer_finish(const sc_mp_writer *w);

#endif
