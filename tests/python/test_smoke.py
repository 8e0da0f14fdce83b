"""The bindings load the built library and agree with it on its version."""
import secchat


def test_version_and_errors():
    assert secchat.version_string().count(".") == 2
    assert secchat.version_number() >> 16 == int(secchat.version_string().split(".")[0])
    assert secchat.strerror(-201) == "decryption failed"
    assert secchat.error_name(-201) == "SECCHAT_ERR_DECRYPT"
    assert secchat.strerror(12345) == "unknown error"
