"""Shared helpers for the process-level chatd tests: start and stop a real
chatd on a free loopback port, drive protocol clients through
tests/helper_relayclient, read chatd's metrics."""
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

BINARY_DIR = pathlib.Path(os.environ.get("SECCHAT_BINARY_DIR", "build"))
CHATD = BINARY_DIR / "apps" / "chatd" / "chatd"
HELPER_DIR = pathlib.Path(os.environ.get("SECCHAT_HELPER_DIR", BINARY_DIR / "tests"))
RELAYCLIENT = HELPER_DIR / "helper_relayclient"

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
LINE_RE = re.compile(TS + r" (debug|info|warn|error) [a-z0-9_]+( .*)?$")


def child_env(extra=None):
    """Environment for our own binaries. They are built with the sanitizers
    when the tests are (no preload needed: the runtime is linked in), so
    drop the interpreter's LD_PRELOAD and let LeakSanitizer check them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    env.pop("LD_PRELOAD", None)
    env["ASAN_OPTIONS"] = "abort_on_error=1:detect_leaks=1"
    env.update(extra or {})
    return env


def free_port(kind=socket.SOCK_STREAM, family=socket.AF_INET):
    with socket.socket(family, kind) as s:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return s.getsockname()[1]


def run_chatd(args, timeout=30, env=None):
    return subprocess.run([str(CHATD)] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=child_env(env))


class Chatd:
    """A chatd process on 127.0.0.1:<free port>."""

    def __init__(self, workdir, *extra, threads=2, metrics=True, env=None, preexec_fn=None,
                 host="127.0.0.1"):
        self.dir = pathlib.Path(workdir)
        self.data = self.dir / "data"
        self.log = self.dir / "chatd.log"
        self.host = host
        self.stderr_path = self.dir / "chatd.stderr"
        # A free port found here can be taken by another process before
        # chatd binds it (other suites run in parallel): then chatd exits
        # with EADDRINUSE and is started again on fresh ports.
        for attempt in range(5):
            self.port = free_port(family=socket.AF_INET6 if ":" in host else socket.AF_INET)
            self.metrics_port = free_port() if metrics else None
            listen = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
            args = [str(CHATD), "--listen", listen, "--data-dir", str(self.data),
                    "--log-file", str(self.log), "--threads", str(threads), "--name",
                    "relay.test"]
            if metrics:
                args += ["--metrics", f"127.0.0.1:{self.metrics_port}"]
            args += [str(a) for a in extra]
            self._stderr = open(self.stderr_path, "w")
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                         env=child_env(env), preexec_fn=preexec_fn)
            try:
                self._wait_listening()
                return
            except AssertionError:
                self._stderr.close()
                if attempt == 4 or self.proc.poll() is None or \
                        "Address already in use" not in self.stderr():
                    raise

    def _wait_listening(self):
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"chatd exited {self.proc.returncode}: {self.stderr()}")
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("chatd did not listen")
                time.sleep(0.02)

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def log_text(self):
        return self.log.read_text(encoding="utf-8", errors="strict")

    def wait_log(self, pattern, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text() if self.log.exists() else ""
            if re.search(pattern, text, re.M):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line matches {pattern!r}:\n{text[-3000:]}")
            time.sleep(0.05)

    def kill(self, sig):
        self.proc.send_signal(sig)

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def cpu_seconds(self):
        """User + system CPU time chatd has used so far."""
        fields = pathlib.Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal and wait; returns (exit status, seconds taken)."""
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("chatd did not stop")
        self._stderr.close()
        return rc, time.monotonic() - t0

    def metrics(self):
        return scrape(self.metrics_port)

    def client(self):
        return Client(self.port, self.host)


class Client:
    """One helper_relayclient process holding any number of client slots."""

    def __init__(self, port, host="127.0.0.1"):
        self.proc = subprocess.Popen([str(RELAYCLIENT), host, str(port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     env=child_env())

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline()
        if not out:
            raise AssertionError(f"helper died on {line!r}: {self.proc.stderr.read()}")
        return out.rstrip("\n")

    def ok(self, line):
        out = self.cmd(line)
        assert out.startswith("ok"), f"{line!r} -> {out!r}"
        return out

    def login(self, i, name, src=None):
        out = self.ok(f"login {i} {name.encode().hex()}" + (f" {src}" if src else ""))
        return out.split("uid=")[1]

    def recv(self, i, ms=2000, skip_presence=True):
        return self.cmd(f"{'recvx' if skip_presence else 'recv'} {i} {ms}")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.returncode == 0, self.proc.stderr.read()


# ---- Prometheus text exposition (format 0.0.4), parsed strictly ----------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"({_NAME})(\{{((?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\n]|\\.)*\",?)*)\}})?"
                     r" ([-+]?(?:[0-9.]+(?:[eE][-+]?\d+)?|NaN|[+-]Inf))( -?\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse_prometheus(text):
    """{(name, frozenset(labels)): value}; raises on any malformed line, a
    sample without a preceding TYPE, or a TYPE seen twice."""
    assert text.endswith("\n")
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert re.fullmatch(rf"# HELP {_NAME} .*", line), line
        elif line.startswith("# TYPE "):
            m = re.fullmatch(rf"# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)", line)
            assert m and m.group(1) not in types, line
            types[m.group(1)] = m.group(2)
        else:
            m = _SAMPLE.fullmatch(line)
            assert m, f"bad sample line {line!r}"
            name = m.group(1)
            assert name in types, f"{name} has no TYPE"
            labels = frozenset(_LABEL.findall(m.group(3) or ""))
            key = (name, labels)
            assert key not in samples, f"duplicate sample {line!r}"
            samples[key] = float(m.group(4))
            if types[name] == "counter":
                assert samples[key] >= 0
    return samples


def scrape(port, path="/metrics"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0].decode()
    headers = dict(h.decode().split(": ", 1) for h in head.split(b"\r\n")[1:])
    return status, headers, body.decode()


def metric(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]
