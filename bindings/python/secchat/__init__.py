"""secchat: Python bindings (ctypes) over libsecchat.

The shared library is found through $SECCHAT_LIB, else the system loader
("libsecchat.so.0"). At import the runtime major version must equal the one
these bindings were written for.
"""
import ctypes
import os

BINDING_MAJOR = 0

_path = os.environ.get("SECCHAT_LIB") or "libsecchat.so.%d" % BINDING_MAJOR
_lib = ctypes.CDLL(_path)

_lib.secchat_init.restype = ctypes.c_int
_lib.secchat_version_string.restype = ctypes.c_char_p
_lib.secchat_version_number.restype = ctypes.c_uint32
_lib.secchat_strerror.restype = ctypes.c_char_p
_lib.secchat_strerror.argtypes = [ctypes.c_int]
_lib.secchat_error_name.restype = ctypes.c_char_p
_lib.secchat_error_name.argtypes = [ctypes.c_int]
_lib.secchat_is_fatal.restype = ctypes.c_int
_lib.secchat_is_fatal.argtypes = [ctypes.c_int]


class SecchatError(Exception):
    """A libsecchat error code with its symbolic name and text."""

    def __init__(self, code):
        self.code = code
        self.name = error_name(code)
        super().__init__("%s (%d): %s" % (self.name, code, strerror(code)))


def version_string():
    return _lib.secchat_version_string().decode()


def version_number():
    return _lib.secchat_version_number()


def strerror(code):
    return _lib.secchat_strerror(code).decode()


def error_name(code):
    return _lib.secchat_error_name(code).decode()


def check(rc):
    """Raise SecchatError for a negative return code, else return it."""
    if rc < 0:
        raise SecchatError(rc)
    return rc


if _lib.secchat_init() != 0:
    raise ImportError("secchat_init failed")
if version_number() >> 16 != BINDING_MAJOR:
    raise ImportError("libsecchat major version %s does not match bindings %d"
                      % (version_string(), BINDING_MAJOR))
