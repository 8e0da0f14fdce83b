"""chatd's syslog forwarding against a real rsyslog (Debian package rsyslog).

rsyslogd is started by the test on free loopback ports (imtcp + imudp) with
an omfile template that prints the fields rsyslog itself parsed out of each
record. If rsyslog accepts our framing (RFC 6587 octet counting over TCP) and
our records (RFC 5424), every record comes out whole, in order, with the
right PRI, version, app name, MSGID and message.

The records come from chatd_logprobe (apps/chatd/tests), which writes through
chatd's own logger and syslog client, and from the chatd binary itself while
it relays. The last tests (security.md D7) check that a stuck or absent
collector never affects relaying.
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

from chatd_util import BINARY_DIR, CHATD, RELAYCLIENT, Chatd, metric, parse_prometheus

RSYSLOGD = "/usr/sbin/rsyslogd"
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
    for exe in (CHATD, PROBE, RELAYCLIENT):
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


def relay_traffic(d, n=20):
    """Two clients on one route exchange n messages; every one must arrive."""
    c = d.client()
    try:
        a = c.login(0, "alpha")
        c.login(1, "beta")
        c.ok("open 0 1")
        c.ok("open 1 1")
        assert c.recv(0, 3000, skip_presence=False).startswith("frame PRESENCE route=1 ")
        assert c.recv(1, 3000, skip_presence=False).startswith("frame PRESENCE route=1 ")
        t0 = time.monotonic()
        for k in range(n):
            c.ok(f"gsend 0 1 {k + 1} {k:04x}")
            assert c.recv(0) == f"frame RELAYED ref={k + 1}"
            assert c.recv(1) == f"frame DELIVER route=1 blob={k:04x}"
        return time.monotonic() - t0
    finally:
        c.close()


def test_chatd_binary_forwards_its_records(rsyslog, tmp_path):
    d = Chatd(tmp_path, "--syslog", f"tcp://127.0.0.1:{rsyslog.tcp}", metrics=False)
    relay_traffic(d, 3)
    rc, took = d.stop()
    assert rc == 0 and took < 2.0, d.stderr()
    file_lines = d.log_text().splitlines()
    recs = rsyslog.records(want=len(file_lines))
    # Every file line reached rsyslog whole, with its event name as MSGID
    # and its severity in PRI (daemon = facility 3). Records of different
    # workers may reach the two sinks in a different order.
    assert len(recs) == len(file_lines)
    sev = {"debug": 7, "info": 6, "warn": 4, "error": 3}
    want = []
    for line in file_lines:
        ts, level, event, *rest = line.split(" ", 3)
        want.append((str(3 * 8 + sev[level]), event, rest[0] if rest else ""))
    assert sorted(want) == sorted((r[0], r[6], r[8]) for r in recs)
    events = [r[6] for r in recs]
    for ev in ("start", "listening", "connect", "register", "auth_ok", "stopping", "stop"):
        assert ev in events
    assert "name=relay.test" in recs[0][8]
    assert f"syslog=127.0.0.1:{rsyslog.tcp}" in recs[0][8]


def test_relaying_unaffected_by_a_stuck_collector(tmp_path):
    """D7: a collector that accepts but never reads. Relaying goes on at
    full speed, the queue stays within its bound, and SIGTERM still exits
    within 2 s (the final flush is bounded). Kernel socket buffers absorb a
    few MB before the queue itself fills; the queue-full drops are counted
    in test_chatd_syslog (collector_never_reads, small_queue_limits)."""
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(1)
    port = stuck.getsockname()[1]
    d = Chatd(tmp_path, "--syslog", f"tcp://127.0.0.1:{port}", "--log-level", "debug")
    conn, _ = stuck.accept()  # accepted, never read
    try:
        # Connections that come and go log 2 lines each (batches of 10
        # addresses x 10: within the per-address cap and the backlog).
        for _ in range(5):
            conns = [socket.create_connection(("127.0.0.1", d.port),
                                              source_address=(f"127.0.0.{2 + i // 10}", 0))
                     for i in range(100)]
            for s in conns:
                s.close()
        took = relay_traffic(d, 150)
        # The sender thread's counters reach the metrics within ~100 ms, later
        # on a loaded machine: poll (bounded) rather than read once.
        deadline = time.monotonic() + 10
        while True:
            st = parse_prometheus(d.metrics()[2])
            assert metric(st, "chatd_syslog_queued") <= 1024
            if metric(st, "chatd_syslog_sent_total") > 800 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert metric(st, "chatd_syslog_sent_total") > 800  # went to the stuck peer
        assert took < 10
    finally:
        rc, t = d.stop()
        conn.close()
        stuck.close()
    assert rc == 0 and t < 2.0, d.stderr()


@pytest.mark.parametrize("uri", ["tcp", "udp"])
def test_relaying_unaffected_without_a_collector(tmp_path, uri):
    """D7: nothing listens at the collector address (TCP refused, UDP
    into the void)."""
    port = free_port(socket.SOCK_STREAM if uri == "tcp" else socket.SOCK_DGRAM)
    d = Chatd(tmp_path, "--syslog", f"{uri}://127.0.0.1:{port}")
    try:
        relay_traffic(d, 50)
    finally:
        rc, t = d.stop()
    assert rc == 0 and t < 2.0, d.stderr()
    assert " info stop reason=signal" in d.log_text()
