"""chatd's syslog forwarding against a real rsyslog (Debian package rsyslog).

rsyslogd is started by the test on free loopback ports (imtcp + imudp) with
an omfile template that prints the fields rsyslog itself parsed out of each
record. If rsyslog accepts our framing (RFC 6587 octet counting over TCP) and
our records (RFC 5424), every record comes out whole, in order, with the
right PRI, version, app name, MSGID and message.

The records come from chatd_logprobe (apps/chatd/tests), which writes through
chatd's own logger and syslog client, and from the chatd binary itself.
"""
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

RSYSLOGD = "/usr/sbin/rsyslogd"
BINARY_DIR = pathlib.Path(os.environ.get("SECCHAT_BINARY_DIR", "build"))
CHATD = BINARY_DIR / "apps" / "chatd" / "chatd"
PROBE = BINARY_DIR / "apps" / "chatd" / "chatd_logprobe"

TEMPLATE = ("%pri%|%protocol-version%|%timereported:::date-rfc3339%|%hostname%|"
            "%app-name%|%procid%|%msgid%|%structured-data%|%msg%\\n")

D8 = ['"eve\\x0ainjected line"', '"cr\\x0dreturn"', '"\\x1b[2Jclear"',
      '"\\x1b]52;c;SGVsbG8=\\x07"', '"abc\\u{202E}fdp.exe"']


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rsyslog:
    def __init__(self, workdir):
        self.dir = workdir
        self.out = workdir / "out.log"
        self.tcp = free_port(socket.SOCK_STREAM)
        self.udp = free_port(socket.SOCK_DGRAM)
        conf = workdir / "rsyslog.conf"
        conf.write_text(f"""
global(workDirectory="{workdir}")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{self.tcp}")
input(type="imudp" address="127.0.0.1" port="{self.udp}")
template(name="fields" type="string" string="{TEMPLATE}")
*.* action(type="omfile" file="{self.out}" template="fields")
""")
        # rsyslogd is not ours to sanitize: no ASan runtime preloaded into it.
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(conf), "-i", str(workdir / "rsyslogd.pid")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("rsyslogd exited: " + self.proc.stdout.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.tcp), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("rsyslogd did not listen on TCP")
                time.sleep(0.05)
        # UDP has no handshake: send a marker until it comes out.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while "|ready|" not in self.text():
                if time.monotonic() > deadline:
                    raise AssertionError("rsyslogd did not receive UDP")
                s.sendto(b"<14>1 - probehost readiness - ready - ready", ("127.0.0.1", self.udp))
                time.sleep(0.05)

    def text(self):
        try:
            return self.out.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def records(self, app="chatd", want=0, timeout=15):
        """Parsed lines of app, once at least `want` of them arrived."""
        deadline = time.monotonic() + timeout
        while True:
            recs = [line.split("|", 8) for line in self.text().splitlines()]
            recs = [r for r in recs if len(r) == 9 and r[4] == app]
            if len(recs) >= want or time.monotonic() > deadline:
                return recs
            time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def rsyslog(tmp_path):
    if not os.access(RSYSLOGD, os.X_OK):
        pytest.fail(f"{RSYSLOGD} not found: these tests need the Debian package rsyslog "
                    "(scripts/install-deps must install it)")
    for exe in (CHATD, PROBE):
        if not os.access(exe, os.X_OK):
            pytest.fail(f"{exe} not built (set SECCHAT_BINARY_DIR to the build tree)")
    r = Rsyslog(tmp_path)
    yield r
    r.stop()


def run_probe(tmp_path, uri, count):
    log = tmp_path / "probe.log"
    p = subprocess.run([str(PROBE), str(log), uri, str(count)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == f"submitted={count} sent={count} dropped=0 send_errors=0"
    return log.read_text().splitlines()


def check_probe_records(recs, file_lines, count):
    assert len(recs) == count, f"{len(recs)} of {count} records reached rsyslog"
    hostname = socket.gethostname()
    for i, (pri, ver, ts, host, app, procid, msgid, sd, msg) in enumerate(recs):
        assert pri == "30"  # daemon.info
        assert ver == "1"  # parsed as RFC 5424
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|\+00:00)", ts), ts
        assert host == hostname
        assert procid.isdigit()
        assert msgid == "probe"
        assert sd == "-"
        assert msg == f"seq={i} user=mallory reason={D8[i % 5]}"
        # Same fields as the file line, which is "TS info probe FIELDS".
        assert file_lines[i].split(" ", 3)[3] == msg
        assert "\x1b" not in msg and "\u202e" not in msg


def test_tcp_octet_counting_through_rsyslog(rsyslog, tmp_path):
    lines = run_probe(tmp_path, f"tcp://127.0.0.1:{rsyslog.tcp}", 500)
    check_probe_records(rsyslog.records(want=500), lines, 500)


def test_udp_through_rsyslog(rsyslog, tmp_path):
    lines = run_probe(tmp_path, f"udp://127.0.0.1:{rsyslog.udp}", 200)
    check_probe_records(rsyslog.records(want=200), lines, 200)


def test_chatd_binary_forwards_its_records(rsyslog, tmp_path):
    log = tmp_path / "chatd.log"
    env = {"PATH": "/usr/bin:/bin", "CHATD_SYSLOG": f"tcp://127.0.0.1:{rsyslog.tcp}"}
    p = subprocess.run([str(CHATD), "--data-dir", str(tmp_path / "data"), "--log-file", str(log),
                        "--name", "relay-test"], env=env, capture_output=True, text=True,
                       timeout=30)
    # The relay core is not built yet: chatd says so and exits 1, after
    # logging (and forwarding) its start and stop records.
    assert p.returncode == 1, p.stderr
    assert "the relay core is not built yet" in p.stderr
    recs = rsyslog.records(want=2)
    assert [r[6] for r in recs] == ["start", "stop"]
    start, stop = recs
    assert start[0] == "30" and stop[0] == "27"  # daemon.info, daemon.err
    assert "name=relay-test" in start[8]
    assert f"syslog=127.0.0.1:{rsyslog.tcp}" in start[8]
    assert stop[8] == 'reason="the relay core is not built yet"'
    file_lines = log.read_text().splitlines()
    assert [ln.split(" ", 3)[3] for ln in file_lines] == [start[8], stop[8]]
