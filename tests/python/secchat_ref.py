"""Independent reference implementation of docs/crypto.md (secchat v1).

Written from the specification document only, with PyNaCl (python3-nacl)
for the primitives and hashlib for BLAKE2b; it shares no code with
libsecchat. tests/python/test_kat.py uses it to recompute every vector in
tests/vectors/crypto_kat.json.
"""
import base64
import hashlib

import nacl.bindings as nb
import nacl.pwhash
import nacl.signing

# Section 2: contexts.
CTX_DH = b"secchat/dh/v1"
CTX_MSG = b"secchat/msg/v1"
CTX_MSGID = b"secchat/msgid/v1"
CTX_SKDIST = b"secchat/skdist/v1"
CTX_KEYREQ = b"secchat/keyreq/v1"
CTX_FPR = b"secchat/fpr/v1"
CTX_SAFETY = b"secchat/safety/v1"


# ---- Section 1: notation ------------------------------------------------

def H(n, data):
    """Unkeyed BLAKE2b with an n-byte digest."""
    return hashlib.blake2b(data, digest_size=n).digest()


def sign(seed, ctx, msg):
    """Sig(ctx, m): Ed25519 over ctx || 0x00 || m."""
    return nacl.signing.SigningKey(seed).sign(ctx + b"\x00" + msg).signature


def verify(pk, ctx, msg, sig):
    nacl.signing.VerifyKey(pk).verify(ctx + b"\x00" + msg, sig)


# Section 1.1: canonical msgpack (the subset used here).
def mp_uint(v):
    if v < 0x80:
        return bytes([v])
    if v < 0x100:
        return b"\xcc" + v.to_bytes(1, "big")
    if v < 0x10000:
        return b"\xcd" + v.to_bytes(2, "big")
    if v < 0x100000000:
        return b"\xce" + v.to_bytes(4, "big")
    return b"\xcf" + v.to_bytes(8, "big")


def mp_bin_header(n):
    if n < 0x100:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 0x10000:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def mp_bin(b):
    return mp_bin_header(len(b)) + b


def mp_array(items):
    n = len(items)
    head = bytes([0x90 + n]) if n <= 15 else b"\xdc" + n.to_bytes(2, "big")
    return head + b"".join(items)


# ---- Section 3: identities ----------------------------------------------

def b32(data):
    return base64.b32encode(data).decode().lower().rstrip("=")


class Identity:
    def __init__(self, sign_seed, dh_sk):
        self.sign_seed = sign_seed
        self.dh_sk = dh_sk
        self.sign_pk, self.sign_sk = nb.crypto_sign_seed_keypair(sign_seed)
        self.dh_pk = nb.crypto_scalarmult_base(dh_sk)
        self.dh_sig = sign(sign_seed, CTX_DH, self.dh_pk)
        self.uid = H(20, self.sign_pk)
        self.uid_string = b32(self.uid)
        self.fingerprint = fingerprint(self.sign_pk)


def fingerprint(sign_pk):
    b = b32(H(32, CTX_FPR + b"\x00" + sign_pk)[:10])
    return "-".join(b[i:i + 4] for i in range(0, 16, 4))


def _safety_half(pk):
    d = H(64, CTX_SAFETY + b"\x00" + pk)
    for _ in range(5200):
        d = H(64, d + pk)
    return "".join("%05d" % (int.from_bytes(d[5 * k:5 * k + 5], "big") % 100000)
                   for k in range(6))


def safety_number(pk_a, pk_b):
    a, b = _safety_half(pk_a), _safety_half(pk_b)
    digits = min(a, b) + max(a, b)
    return " ".join(digits[i:i + 5] for i in range(0, 60, 5))


# ---- Section 4: identity blobs ------------------------------------------

def blob_plain(ident):
    body = b"SCID" + b"\x01\x01" + ident.sign_seed + ident.dh_sk
    return body + H(16, body)


def blob_encrypted(ident, passphrase, opslimit, memlimit, salt, nonce):
    head = (b"SCID\x01\x02" + opslimit.to_bytes(4, "little")
            + memlimit.to_bytes(8, "little") + salt + nonce)
    key = nacl.pwhash.argon2id.kdf(32, passphrase, salt, opslimit=opslimit, memlimit=memlimit)
    ct = nb.crypto_aead_xchacha20poly1305_ietf_encrypt(ident.sign_seed + ident.dh_sk, head,
                                                      nonce, key)
    return head + ct


def blob_open_encrypted(blob, passphrase):
    """Returns (sign_seed, dh_sk); raises on a wrong passphrase or altered blob."""
    assert blob[:6] == b"SCID\x01\x02" and len(blob) == 138
    ops = int.from_bytes(blob[6:10], "little")
    mem = int.from_bytes(blob[10:18], "little")
    assert 1 <= ops <= 10 and 8192 <= mem <= 268435456
    key = nacl.pwhash.argon2id.kdf(32, passphrase, blob[18:34], opslimit=ops, memlimit=mem)
    pt = nb.crypto_aead_xchacha20poly1305_ietf_decrypt(blob[58:], blob[:58], blob[34:58], key)
    return pt[:32], pt[32:]


# ---- Section 5: ratchet ---------------------------------------------------

def kdf(key, subkey_id, ctx):
    """crypto_kdf_derive_from_key(32, id, ctx, key) as keyed BLAKE2b."""
    return hashlib.blake2b(b"", key=key, digest_size=32,
                           salt=subkey_id.to_bytes(8, "little") + bytes(8),
                           person=ctx + bytes(8)).digest()


def ratchet_step(ck):
    """(MK_i, CK_{i+1}) from CK_i."""
    return kdf(ck, 1, b"SCmsgkey"), kdf(ck, 2, b"SCchain_")


def chain_key_at(ck0, i):
    ck = ck0
    for _ in range(i):
        ck = ratchet_step(ck)[1]
    return ck


# ---- Section 6: group messages ------------------------------------------

def inner_bytes(chat_id, epoch, log_head, author_uid, chain_id, seq, prev_msg_id, ts_ms, flags,
                content_type, body):
    items = [mp_uint(1), mp_bin(chat_id), mp_uint(epoch), mp_bin(log_head), mp_bin(author_uid),
             mp_bin(chain_id), mp_uint(seq), mp_bin(prev_msg_id), mp_uint(ts_ms),
             mp_uint(flags), mp_uint(content_type), mp_bin(body)]
    # The padding element is last: header 0xc4 p plus p zero bytes.
    length = len(mp_array(items + [b""]))
    p = (64 - (length + 2) % 64) % 64
    return mp_array(items + [mp_bin(bytes(p))])


def msg_id(inner):
    return H(32, CTX_MSGID + b"\x00" + inner)


def sign_inner(seed, inner):
    """Hash, then sign: the message signature covers msg_id(inner)."""
    return sign(seed, CTX_MSG, msg_id(inner))


def header_bytes(epoch, sender_uid, chain_id, iteration, nonce):
    return mp_array([mp_uint(epoch), mp_bin(sender_uid), mp_bin(chain_id), mp_uint(iteration),
                     mp_bin(nonce)])


def seal(mk, header, route_id, inner, sig, nonce):
    pt = mp_array([mp_bin(inner), mp_bin(sig)])
    ct = nb.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, header + route_id, nonce, mk)
    return b"\x92" + header + mp_bin(ct)


def open_envelope(mk, blob, header_len, route_id, nonce):
    """Decrypt an envelope whose header is blob[1:1+header_len]; returns
    (inner, sig). Used by negative checks of the AD binding."""
    header = blob[1:1 + header_len]
    rest = blob[1 + header_len:]
    if rest[0] == 0xc4:
        ct = rest[2:]
    elif rest[0] == 0xc5:
        ct = rest[3:]
    else:
        ct = rest[5:]
    pt = nb.crypto_aead_xchacha20poly1305_ietf_decrypt(ct, header + route_id, nonce, mk)
    # pt = 0x92, bin(inner), bin(sig)
    if pt[1] == 0xc4:
        n, off = pt[2], 3
    else:
        n, off = int.from_bytes(pt[2:4], "big"), 4
    inner = pt[off:off + n]
    assert pt[off + n:off + n + 2] == b"\xc4\x40"
    return inner, pt[off + n + 2:]


# ---- Section 7: distribution and requests --------------------------------

def signed_message(ctx, seed, body):
    return mp_array([mp_bin(body), mp_bin(sign(seed, ctx, body))])


def skdist_body(chat_id, epoch, log_head, owner_uid, recipient_uid, chain_id, iteration,
                chain_key):
    return mp_array([mp_uint(1), mp_bin(chat_id), mp_uint(epoch), mp_bin(log_head),
                     mp_bin(owner_uid), mp_bin(recipient_uid), mp_bin(chain_id),
                     mp_uint(iteration), mp_bin(chain_key)])


def keyreq_body(chat_id, epoch, requester_uid, recipient_uid, chain_id):
    return mp_array([mp_uint(1), mp_bin(chat_id), mp_uint(epoch), mp_bin(requester_uid),
                     mp_bin(recipient_uid), mp_bin(chain_id)])
