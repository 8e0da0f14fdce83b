"""secchat.identity: identities, uid text, fingerprints and safety numbers
(ctypes over include/secchat/identity.h; formats in docs/crypto.md).

    from secchat.identity import Identity, safety_number
    me = Identity.new()
    blob = me.export(b"passphrase")
    again = Identity.import_blob(blob, b"passphrase")
"""
import ctypes

from . import SecchatError, _lib, check

_u8p = ctypes.POINTER(ctypes.c_uint8)
_vp = ctypes.c_void_p

UNENCRYPTED = 1

_lib.secchat_identity_new.argtypes = [ctypes.POINTER(_vp)]
_lib.secchat_identity_new.restype = ctypes.c_int
_lib.secchat_identity_free.argtypes = [_vp]
_lib.secchat_identity_free.restype = None
_lib.secchat_identity_export.argtypes = [_vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64,
                                         ctypes.c_uint64, ctypes.c_uint32, ctypes.c_char_p,
                                         ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
_lib.secchat_identity_export.restype = ctypes.c_int
_lib.secchat_identity_import.argtypes = [ctypes.POINTER(_vp), ctypes.c_char_p, ctypes.c_size_t,
                                         ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32]
_lib.secchat_identity_import.restype = ctypes.c_int
_lib.secchat_identity_blob_is_encrypted.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_lib.secchat_identity_blob_is_encrypted.restype = ctypes.c_int
for _name in ("uid", "sign_public_key", "dh_public_key", "dh_sig"):
    getattr(_lib, "secchat_identity_" + _name).argtypes = [_vp]
    getattr(_lib, "secchat_identity_" + _name).restype = _u8p
for _name in ("secchat_identity_uid_string", "secchat_identity_fingerprint"):
    getattr(_lib, _name).argtypes = [_vp, ctypes.c_char_p, ctypes.c_size_t]
    getattr(_lib, _name).restype = ctypes.c_int
_lib.secchat_uid_to_string.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
_lib.secchat_uid_to_string.restype = ctypes.c_int
_lib.secchat_fingerprint.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
_lib.secchat_fingerprint.restype = ctypes.c_int
_lib.secchat_safety_number.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                       ctypes.c_size_t]
_lib.secchat_safety_number.restype = ctypes.c_int
_lib.secchat_safety_number_equal.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
_lib.secchat_safety_number_equal.restype = ctypes.c_int
for _name in ("identity_blob_max_bytes", "uid_string_bytes", "fingerprint_bytes",
              "safety_number_bytes", "uid_bytes", "sign_publickey_bytes",
              "dh_publickey_bytes", "signature_bytes"):
    getattr(_lib, "secchat_" + _name).argtypes = []
    getattr(_lib, "secchat_" + _name).restype = ctypes.c_size_t

BLOB_MAX = _lib.secchat_identity_blob_max_bytes()
_UID_STR = _lib.secchat_uid_string_bytes()
_FPR = _lib.secchat_fingerprint_bytes()
_SAFETY = _lib.secchat_safety_number_bytes()


def _exact(data, n, what):
    data = bytes(data)
    if len(data) != n:
        raise ValueError("%s must be %d bytes" % (what, n))
    return data


def _text(fn, *args, size):
    buf = ctypes.create_string_buffer(size)
    check(fn(*args, buf, size))
    return buf.value.decode("ascii")


class Identity:
    """An owned secchat_identity. Secrets stay in libsecchat's memory; call
    close() (or use `with`) to wipe them deterministically."""

    def __init__(self, handle):
        self._h = handle

    @classmethod
    def new(cls):
        h = _vp()
        check(_lib.secchat_identity_new(ctypes.byref(h)))
        return cls(h)

    @classmethod
    def import_blob(cls, blob, passphrase=None):
        """Rebuild from export(); passphrase None means the blob must be an
        unencrypted one."""
        blob = bytes(blob)
        h = _vp()
        if passphrase is None:
            rc = _lib.secchat_identity_import(ctypes.byref(h), blob, len(blob), None, 0,
                                              UNENCRYPTED)
        else:
            pw = bytes(passphrase)
            rc = _lib.secchat_identity_import(ctypes.byref(h), blob, len(blob), pw, len(pw), 0)
        check(rc)
        return cls(h)

    def export(self, passphrase=None, opslimit=0, memlimit=0, unencrypted=False):
        """Encrypted blob under passphrase (Argon2id costs: 0 = defaults), or,
        only with unencrypted=True and no passphrase, the plain blob."""
        out = ctypes.create_string_buffer(BLOB_MAX)
        n = ctypes.c_size_t(0)
        if unencrypted:
            if passphrase is not None:
                raise ValueError("unencrypted export takes no passphrase")
            rc = _lib.secchat_identity_export(self._handle(), None, 0, opslimit, memlimit,
                                              UNENCRYPTED, out, BLOB_MAX, ctypes.byref(n))
        else:
            if passphrase is None:
                raise ValueError("a passphrase is required (or unencrypted=True)")
            pw = bytes(passphrase)
            rc = _lib.secchat_identity_export(self._handle(), pw, len(pw), opslimit, memlimit,
                                              0, out, BLOB_MAX, ctypes.byref(n))
        check(rc)
        data = out.raw[:n.value]
        ctypes.memset(out, 0, BLOB_MAX)
        return data

    def _handle(self):
        if not self._h:
            raise ValueError("identity is closed")
        return self._h

    def _bytes(self, name, n):
        p = getattr(_lib, "secchat_identity_" + name)(self._handle())
        return ctypes.string_at(p, n)

    @property
    def uid(self):
        return self._bytes("uid", _lib.secchat_uid_bytes())

    @property
    def sign_public_key(self):
        return self._bytes("sign_public_key", _lib.secchat_sign_publickey_bytes())

    @property
    def dh_public_key(self):
        return self._bytes("dh_public_key", _lib.secchat_dh_publickey_bytes())

    @property
    def dh_sig(self):
        return self._bytes("dh_sig", _lib.secchat_signature_bytes())

    @property
    def uid_string(self):
        return _text(_lib.secchat_identity_uid_string, self._handle(), size=_UID_STR)

    @property
    def fingerprint(self):
        return _text(_lib.secchat_identity_fingerprint, self._handle(), size=_FPR)

    def close(self):
        if self._h:
            _lib.secchat_identity_free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


def blob_is_encrypted(blob):
    """True/False for a well-formed identity blob; SecchatError otherwise."""
    blob = bytes(blob)
    return bool(check(_lib.secchat_identity_blob_is_encrypted(blob, len(blob))))


def uid_to_string(uid):
    return _text(_lib.secchat_uid_to_string, _exact(uid, 20, "uid"), size=_UID_STR)


def fingerprint(sign_pk):
    return _text(_lib.secchat_fingerprint, _exact(sign_pk, 32, "sign_pk"), size=_FPR)


def safety_number(sign_pk_a, sign_pk_b):
    return _text(_lib.secchat_safety_number, _exact(sign_pk_a, 32, "sign_pk_a"),
                 _exact(sign_pk_b, 32, "sign_pk_b"), size=_SAFETY)


def safety_number_equal(a, b):
    return _lib.secchat_safety_number_equal(a.encode(), b.encode()) == 1


__all__ = ["Identity", "SecchatError", "blob_is_encrypted", "uid_to_string", "fingerprint",
           "safety_number", "safety_number_equal", "UNENCRYPTED", "BLOB_MAX"]
