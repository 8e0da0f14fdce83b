"""chatd at process level: a real chatd on a free loopback port, clients
speaking the protocol over TCP (tests/helper_relayclient), raw sockets for
the hostile cases. Covers relaying through the worker threads, the
per-address cap (D2), slowloris and garbage (A3, D1), SIGTERM/SIGHUP, the
log content (D8, D11) and the metrics endpoint."""
import os
import pathlib
import re
import signal
import socket
import time

import pytest

from chatd_util import (CHATD, LINE_RE, RELAYCLIENT, Chatd, metric, parse_prometheus,
                        run_chatd, scrape)

PLAIN = b"PLAINTEXT-MARKER-do-not-log-0123456789"


@pytest.fixture(autouse=True)
def built():
    for exe in (CHATD, RELAYCLIENT):
        if not os.access(exe, os.X_OK):
            pytest.fail(f"{exe} not built (set SECCHAT_BINARY_DIR / SECCHAT_HELPER_DIR)")


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    """One chatd for the module: 2 workers (so routes span workers and
    fanout jobs cross threads), debug log, hashed identities (the
    default), metrics on. Registrations are limited per source address
    for the whole process (10/min): tests that register more than a few
    clients use their own 127.0.0.x source."""
    d = Chatd(tmp_path_factory.mktemp("relay"), "--log-level", "debug", threads=2)
    d.secrets = []   # strings that must never reach the log
    d.users = []     # (uid, name) of the clients that logged in
    yield d
    rc, _ = d.stop()
    assert rc == 0, d.stderr()


@pytest.fixture
def client(relay):
    c = relay.client()
    yield c
    c.close()


def join_route(c, slots, route):
    """Open the route on every slot, then wait until each has seen the
    others online: only then does a GROUP_SEND reach all of them (routes
    are replicated between workers asynchronously)."""
    for i in slots:
        c.ok(f"open {i} {route}")
    for i in slots:
        seen = 0
        while seen < len(slots) - 1:
            f = c.recv(i, 3000, skip_presence=False)
            assert f.startswith(f"frame PRESENCE route={route} "), f
            assert f.endswith("online=1")
            seen += 1


def remember(relay, c, slot, uid, name):
    relay.users.append((uid, name))
    relay.secrets.append(c.ok(f"token {slot}").split(" ", 1)[1])


def test_group_send_reaches_every_other_member_once(relay, client):
    names = ["alice", "bob", "carol", "dave"]
    uids = [client.login(i, n) for i, n in enumerate(names)]
    for i, (u, n) in enumerate(zip(uids, names)):
        remember(relay, client, i, u, n)
    join_route(client, range(4), 1)
    for s in range(4):
        blob = (PLAIN + bytes([s])).hex()
        client.ok(f"gsend {s} 1 {100 + s} {blob}")
        assert client.recv(s) == f"frame RELAYED ref={100 + s}"
        for r in range(4):
            if r != s:
                assert client.recv(r) == f"frame DELIVER route=1 blob={blob}"
    for r in range(4):  # exactly once: nothing else pending
        assert client.recv(r, 300) == "timeout"
    # A non-member gets ERROR{unknown_recipient=8, ref} and nothing is relayed.
    client.login(4, "eve")
    client.ok(f"gsend 4 1 55 {PLAIN.hex()}")
    assert client.recv(4) == "frame ERROR code=8 ref=55"
    for r in range(4):
        assert client.recv(r, 200) == "timeout"


def test_direct_and_unknown_recipient(relay, client):
    a = client.login(0, "dina")
    b = client.login(1, "dirk")
    remember(relay, client, 0, a, "dina")
    client.ok(f"direct 0 {b} 9 {PLAIN.hex()}")
    assert client.recv(0) == "frame RELAYED ref=9"
    assert client.recv(1) == f"frame DIRECT_DELIVER from={a} blob={PLAIN.hex()}"
    client.ok(f"direct 1 {'00' * 20} 10 abcd")
    assert client.recv(1) == "frame ERROR code=8 ref=10"
    client.ok("ping 0 77")
    assert client.recv(0) == "frame PONG nonce=77"


def test_fingerprint_in_handshake_matches_pubkey(relay, client):
    p = run_chatd(["pubkey", "--data-dir", relay.data])
    fpr = re.search(r"fingerprint ([a-z2-7]{52})", p.stdout).group(1)
    client.ok("new 0 " + b"fp".hex())
    assert client.ok("connect 0") == f"ok fpr={fpr} server=relay.test"


def test_stolen_token_is_refused_others_unaffected(relay, client):
    """B11 through the daemon: a token with the wrong key's proof."""
    client.login(0, "owner")
    client.ok("new 1 " + b"thief".hex())
    client.ok("connect 1")
    client.ok("steal 1 0")
    assert client.cmd("auth 1") == "err frame ERROR code=3 ref=0"
    assert client.recv(1, 2000) in ("frame BYE reason=4", "eof")
    client.ok("ping 0 1")
    assert client.recv(0) == "frame PONG nonce=1"


def test_100_concurrent_connections_over_20_addresses(relay):
    c = relay.client()
    try:
        uids = {}
        for i in range(100):
            # 5 per address: two addresses whose keyed hashes share a
            # registration bucket (docs/relay.md 4) still fit its burst.
            uids[i] = c.login(i, f"user{i:03d}", src=f"127.0.0.{2 + i // 5}")
        s = relay.metrics()[2]
        assert metric(parse_prometheus(s), "chatd_connections") >= 100
        groups = [list(range(g * 10, g * 10 + 10)) for g in range(10)]
        for g, slots in enumerate(groups):
            join_route(c, slots, 10 + g)
        for g, slots in enumerate(groups):
            for s in slots:
                c.ok(f"gsend {s} {10 + g} {s + 1} {bytes([s]).hex()}")
        for g, slots in enumerate(groups):
            for r in slots:
                got = [c.recv(r) for _ in range(10)]
                assert f"frame RELAYED ref={r + 1}" in got
                delivered = sorted(x for x in got if x.startswith("frame DELIVER"))
                assert delivered == sorted(
                    f"frame DELIVER route={10 + g} blob={bytes([s]).hex()}"
                    for s in slots if s != r)
                assert c.recv(r, 50) == "timeout"
    finally:
        c.close()


def test_per_ip_cap_closes_extra_connections_at_once(relay, client):
    """D2: the default cap is 16 per address; descriptors stay bounded."""
    fds = relay.fd_count()
    for i in range(40):
        client.ok("new %d %s" % (i, b"x".hex()))
        client.ok(f"tcp {i} 127.0.0.50")
    time.sleep(0.3)  # refusals happen at accept: by now they are closed
    closed = [i for i in range(40) if client.cmd(f"waiteof {i} 10").startswith("ok")]
    assert closed == list(range(16, 40))
    assert relay.fd_count() <= fds + 16
    # Another address is unaffected, and so are the 16 (they still handshake).
    client.login(30, "other", src="127.0.0.51")
    client.ok("close 0")
    time.sleep(0.2)  # the worker releases the slot
    client.login(31, "again", src="127.0.0.50")
    relay.wait_log(r" warn refused peer=127\.0\.0\.50 reason=max_conns_per_ip")


def test_max_conns_closes_extra_connections(tmp_path):
    """--max-conns counts every open connection, whatever its address."""
    d = Chatd(tmp_path, "--max-conns", "6", "--max-conns-per-ip", "2", threads=1)
    c = d.client()
    try:
        for i in range(8):
            c.ok("new %d %s" % (i, b"x".hex()))
            c.ok(f"tcp {i} 127.0.0.{60 + i}")
        time.sleep(0.3)
        closed = [i for i in range(8) if c.cmd(f"waiteof {i} 10").startswith("ok")]
        assert closed == [6, 7]
        st = parse_prometheus(d.metrics()[2])
        assert metric(st, "chatd_refused_total", reason="max_conns") == 2
        assert metric(st, "chatd_connections") == 6
        c.ok("close 0")
        time.sleep(0.2)
        c.login(10, "fits", src="127.0.0.70")
    finally:
        c.close()
        assert d.stop()[0] == 0
    assert re.search(r" warn refused peer=127\.0\.0\.6[67] reason=max_conns ", d.log_text())


def test_registration_limit_is_per_process_not_per_worker(tmp_path):
    """The registration budget per source address (10/min, burst 10) holds
    for the whole process: with 4 workers and the connections of one
    address spread over all of them (least-loaded placement), exactly 10
    of 14 registrations succeed, not 4 x 10. The bucket refills one
    registration per 6 s, so the count is exact when the attempts take
    less than that (they take well under a second); a slower machine may
    see one more per 6 s elapsed, which the bound allows."""
    d = Chatd(tmp_path, threads=4)
    c = d.client()
    try:
        t0 = time.monotonic()
        outs = [c.cmd(f"login {i} {b'reg'.hex()} 127.0.0.80") for i in range(14)]
        elapsed = time.monotonic() - t0
        ok = [o for o in outs if o.startswith("ok uid=")]
        refused = [o for o in outs if o == "err frame ERROR code=5 ref=0"]
        assert len(ok) + len(refused) == 14, outs
        assert 10 <= len(ok) <= 10 + int(elapsed / 6), (elapsed, outs)
        deadline = time.monotonic() + 3  # workers publish their counters every 100 ms
        while True:
            st = parse_prometheus(d.metrics()[2])
            counts = (metric(st, "chatd_limit_hits_total", limit="register"),
                      metric(st, "chatd_registrations_total"))
            if counts == (len(refused), len(ok)) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert counts == (len(refused), len(ok))
        # The connections did land on every worker (else this proves nothing).
        workers = set(re.findall(r" info connect worker=(\d+) .*peer=127\.0\.0\.80:", d.log_text()))
        assert workers == {"0", "1", "2", "3"}, workers
        # Another address has its own budget.
        c.login(20, "other", src="127.0.0.81")
    finally:
        c.close()
        assert d.stop()[0] == 0


def test_ipv6_listen(tmp_path):
    d = Chatd(tmp_path, host="::1", threads=2)
    c = d.client()
    try:
        a = c.login(0, "v6a")
        c.login(1, "v6b")
        c.ok(f"direct 1 {a} 3 0102")
        assert c.recv(0) == f"frame DIRECT_DELIVER from={c.ok('uid 1').split()[1]} blob=0102"
    finally:
        c.close()
        assert d.stop()[0] == 0
    assert re.search(r' info connect worker=\d conn=\d+ peer="\[::1\]:\d+"', d.log_text())


def test_slow_consumer_disconnected_others_unaffected(tmp_path):
    """D3: a member that stops reading in a busy route: its output queue
    hits the 1 MiB cap (after the kernel's socket buffers filled), it is
    disconnected as a slow consumer, and the sender goes on unaffected."""
    d = Chatd(tmp_path, threads=1)
    c = d.client()
    try:
        c.login(0, "stuck")
        c.login(1, "talker")
        join_route(c, [0, 1], 7)
        blob = os.urandom(60000).hex()
        for k in range(200):  # 12 MB towards the stuck reader
            c.ok(f"gsend 1 7 {k + 1} {blob}")
        d.wait_log(r" warn slow_consumer ", timeout=10)
        c.ok("ping 1 9")
        got = [c.recv(1, 5000) for _ in range(201)]
        assert got[-1] == "frame PONG nonce=9", got[-3:]
        assert all(g.startswith("frame RELAYED ref=") for g in got[:-1])
        assert c.cmd("waiteof 0 10000").startswith("ok")
        st = parse_prometheus(d.metrics()[2])
        assert metric(st, "chatd_limit_hits_total", limit="slow_consumer") == 1
        assert metric(st, "chatd_connections") == 1
    finally:
        c.close()
        assert d.stop()[0] == 0


def test_idle_stats_published_after_the_last_cross_worker_job(tmp_path):
    """A worker whose own clients left first changes once more when the
    other worker's last client leaves: the fanout jobs it takes in then
    drop that user from its remote directory and route. It must publish
    that change like any other, or chatd_core_memory_bytes (which the
    soak's idle check compares with the idle start) and the fanout_in
    counter stay stale for as long as nothing else happens on it."""
    def core(st):
        return (metric(st, "chatd_core_memory_bytes")
                - metric(st, "chatd_core_pool_memory_bytes"))

    d = Chatd(tmp_path, threads=2)
    c = d.client()
    try:
        # Idle first: the metrics thread listens (it may start after the
        # relay's socket), the start-up probe's connection is gone from its
        # worker, which published that (within 100 ms) as it does every change.
        deadline, prev = time.monotonic() + 5, None
        while True:
            try:
                st = parse_prometheus(d.metrics()[2])
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "metrics endpoint not listening"
                time.sleep(0.05)
                continue
            now = (metric(st, "chatd_connections"), core(st))
            if now[0] == 0 and now == prev:
                break
            assert time.monotonic() < deadline, f"not idle after start: {now}"
            prev = now
            time.sleep(0.3)
        idle = now[1]
        c.login(0, "leaves-first")
        c.login(1, "leaves-last")
        # Least-loaded dispatch: the second concurrent connection went to
        # the other worker, so each worker holds the other's user remotely.
        log = d.wait_log(r"(?s) info connect .* info connect .* info connect ")
        workers = re.findall(r" info connect worker=(\d+) ", log)[1:]  # after the probe's
        assert sorted(workers) == ["0", "1"], workers
        join_route(c, [0, 1], 9)
        c.ok("close 0")
        assert c.cmd("recv 1 3000") == "frame PRESENCE route=9 uid=" + c.ok("uid 0")[3:] + " online=0"
        time.sleep(0.3)  # the first worker has published its last own change
        c.ok("close 1")
        deadline = time.monotonic() + 3
        while True:
            st = parse_prometheus(d.metrics()[2])
            got = (metric(st, "chatd_connections"), core(st),
                   metric(st, "chatd_fanout_jobs_total", direction="in"))
            want = (0, idle, metric(st, "chatd_fanout_jobs_total", direction="out"))
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert got == want, f"(connections, core bytes, jobs in) idle: {got}, expected {want}"
    finally:
        c.close()
        assert d.stop()[0] == 0


def raw_conn(relay):
    return socket.create_connection(("127.0.0.1", relay.port), timeout=15)


def wait_closed(s, timeout):
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


def test_garbage_closes_only_that_connection(relay, client):
    client.login(0, "steady", src="127.0.0.90")
    for junk in (os.urandom(3000), b"\x00\x00\x00\x00", b"GET / HTTP/1.0\r\n\r\n",
                 b"\x00\x00\x00\x30" + b"\xff" * 48):
        s = raw_conn(relay)
        s.sendall(junk)
        assert wait_closed(s, 5) < 5
        s.close()
    client.ok("ping 0 2")
    assert client.recv(0) == "frame PONG nonce=2"


def test_half_frame_then_close(relay, client):
    """A4/D5: an authenticated member sends half a frame and disconnects:
    nothing partial reaches the route, the others see it go offline."""
    a = client.login(0, "halfway", src="127.0.0.91")
    client.login(1, "watcher", src="127.0.0.91")
    join_route(client, [0, 1], 5)
    client.ok("raw 0 00000200" + "ab" * 100)  # 100 of 512 announced bytes
    client.ok("close 0")
    assert client.recv(1, 3000, skip_presence=False) == \
        f"frame PRESENCE route=5 uid={a} online=0"
    assert client.recv(1, 300, skip_presence=False) == "timeout"
    relay.wait_log(r" info disconnect worker=\d conn=\d+ user=h:[0-9a-f]{16} "
                   r"name=h:[0-9a-f]{16} partial_frame=yes$")


def test_slowloris_closed_at_handshake_deadline(relay, client):
    """A3/D1, short variant: a huge prefix then silence, one byte then
    silence, and half a handshake: all gone by the 10 s handshake deadline,
    while a legitimate client connects and chats at once."""
    huge = raw_conn(relay)
    huge.sendall(b"\xff\xff\xff\xff")
    one = raw_conn(relay)
    one.sendall(b"\x00")
    silent = raw_conn(relay)
    t0 = time.monotonic()
    a = client.login(0, "legit1", src="127.0.0.92")
    client.login(1, "legit2", src="127.0.0.92")
    client.ok(f"direct 1 {a} 1 00")
    assert client.recv(0).startswith("frame DIRECT_DELIVER")
    assert time.monotonic() - t0 < 1.0
    for s in (huge, one, silent):
        left = 12 - (time.monotonic() - t0)
        wait_closed(s, left)
        assert time.monotonic() - t0 < 11.5
        s.close()
    # The one-byte and the silent connection hit the handshake deadline;
    # the huge prefix is refused on its 4 bytes (handshake messages are
    # limited to 2048) or by the same deadline.
    deadline = time.monotonic() + 2
    while metric(parse_prometheus(relay.metrics()[2]), "chatd_timeouts_total",
                 deadline="handshake") < 2:
        assert time.monotonic() < deadline, "handshake timeouts not counted"
        time.sleep(0.05)


def documented_log_events():
    """{event: {levels}} from the tables of docs/relay.md, "Log events"
    (core events and chatd's own)."""
    doc = (pathlib.Path(os.environ["SECCHAT_SOURCE_DIR"]) / "docs" / "relay.md").read_text()
    sect = doc.split("### Log events", 1)[1].split("\n## ", 1)[0]
    events = {}
    for m in re.finditer(r"^\| `([a-z_]+)` \| ([^|]+) \|", sect, re.M):
        levels = set(re.findall(r"\b(debug|info|warn|error)\b", m.group(2)))
        assert levels, f"no level documented for {m.group(1)}"
        events.setdefault(m.group(1), set()).update(levels)
    return events


def test_log_content(relay):
    text = relay.log_text()
    lines = text.splitlines()
    assert all(LINE_RE.match(ln) for ln in lines), [ln for ln in lines if not LINE_RE.match(ln)]
    # Every line is a documented event at a documented level.
    documented = documented_log_events()
    assert len(documented) >= 25, sorted(documented)
    for ln in lines:
        level, event = ln.split(" ")[1:3]
        assert event in documented, f"undocumented log event: {ln}"
        assert level in documented[event], f"{event} at level {level}, documented {documented[event]}"
    for ev in ("start", "listening", "connect", "register", "auth_ok", "auth_fail", "route_open",
               "disconnect", "close", "refused"):
        assert ev in documented
        assert re.search(rf"^\S+ \w+ {ev} ", text, re.M), f"no {ev} event"
    assert re.search(r" auth_fail .*reason=", text)
    assert re.search(r" close .*reason=(protocol_error|auth_timeout)", text)
    # No content, no token, no key material, identities hashed.
    assert PLAIN.decode() not in text and PLAIN.hex() not in text
    for secret in relay.secrets:
        assert secret not in text and secret.split(".")[1] not in text
    pem = (relay.data / "token_key.pem").read_text()
    body = "".join(pem.splitlines()[1:-1])
    for chunk in (body[i:i + 16] for i in range(0, len(body) - 16, 16)):
        assert chunk not in text
    noise = (relay.data / "noise_key").read_bytes()
    assert noise.hex() not in text
    assert re.search(r" user=h:[0-9a-f]{16}", text)
    for uid, name in relay.users:
        assert f"name={name}" not in text and f'name="{name}"' not in text
    # The uid's text form must not be there either (hashed mode).
    assert not re.search(r"user=[a-z2-7]{32}", text)


def test_metrics_endpoint(relay):
    status, headers, body = scrape(relay.metrics_port)
    assert status == "HTTP/1.0 200 OK"
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert int(headers["Content-Length"]) == len(body.encode())
    st = parse_prometheus(body)
    assert metric(st, "chatd_workers") == 2
    assert metric(st, "chatd_registrations_total") >= 100
    assert metric(st, "chatd_auth_ok_total") >= 100
    assert metric(st, "chatd_deliveries_total") >= 900 + 12
    assert metric(st, "chatd_relayed_total") >= 100 + 4
    assert metric(st, "chatd_directs_total") >= 1
    assert metric(st, "chatd_refused_total", reason="per_ip") >= 4
    assert metric(st, "chatd_limit_hits_total", limit="per_ip") >= 4
    assert metric(st, "chatd_auth_failures_total", **{"class": "proof"}) >= 1
    assert metric(st, "chatd_handshakes_total", result="ok") >= 100
    assert metric(st, "chatd_fanout_jobs_total", direction="in") > 0
    # Jobs did wait in inboxes, not for long on an idle machine (a wrong clock or an
    # unset queue time would read as hours).
    assert 0 <= metric(st, "chatd_fanout_lag_max_ms") < 10000
    assert metric(st, "chatd_frames_total", direction="in") > 0
    assert metric(st, "chatd_bytes_total", direction="out") > 0
    assert metric(st, "chatd_syslog_dropped_total") == 0
    assert metric(st, "chatd_core_memory_bytes") > 0
    assert 0 <= metric(st, "chatd_core_pool_memory_bytes") <= 2 * 64 * (16384 + 2048 + 64)
    # Other paths and methods.
    assert scrape(relay.metrics_port, "/nope")[0] == "HTTP/1.0 404 Not Found"
    with socket.create_connection(("127.0.0.1", relay.metrics_port), timeout=5) as s:
        s.sendall(b"POST /metrics HTTP/1.0\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.0 400")
    # A client that sends nothing is dropped after the 2 s budget, and does
    # not block others meanwhile.
    idle = socket.create_connection(("127.0.0.1", relay.metrics_port), timeout=5)
    assert scrape(relay.metrics_port)[0] == "HTTP/1.0 200 OK"
    assert wait_closed(idle, 5) < 3
    idle.close()


def test_emfile_handled_without_busy_loop(tmp_path):
    """D9: with 64 descriptors, a burst of connections exhausts them; chatd
    pauses accepting instead of spinning (CPU < 5 %) and recovers once
    descriptors are free again."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    d = Chatd(tmp_path, "--max-conns-per-ip", "200", preexec_fn=limit)
    held = []
    try:
        for i in range(120):
            held.append(socket.create_connection(("127.0.0.1", d.port),
                                                 source_address=(f"127.0.0.{2 + i % 50}", 0)))
        time.sleep(0.5)  # chatd runs into EMFILE now
        cpu0, t0 = d.cpu_seconds(), time.monotonic()
        time.sleep(1.5)
        used = (d.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        assert used < 0.05, f"chatd used {used:.0%} CPU while out of descriptors"
        d.wait_log(r" warn accept_paused error=")
    finally:
        for s in held:
            s.close()
    # Descriptors come back; a client gets in and chats.
    deadline = time.monotonic() + 10
    c = d.client()
    try:
        while True:
            out = c.cmd("login 0 " + b"late".hex())
            if out.startswith("ok"):
                break
            assert time.monotonic() < deadline, out
            time.sleep(0.2)
        c.ok("ping 0 5")
        assert c.recv(0) == "frame PONG nonce=5"
    finally:
        c.close()
        assert d.stop()[0] == 0


def test_sighup_reopens_log(tmp_path):
    d = Chatd(tmp_path, metrics=False, threads=1)
    try:
        os.rename(d.log, tmp_path / "chatd.log.1")
        d.kill(signal.SIGHUP)
        d.wait_log(r" info log_reopen result=ok")
        c = d.client()
        c.login(0, "after")
        c.close()
        d.wait_log(r" info auth_ok ")
        old = (tmp_path / "chatd.log.1").read_text()
        assert " listening " in old and " auth_ok " not in old
    finally:
        assert d.stop()[0] == 0
    assert " info stop reason=signal" in d.log_text()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_sends_bye_and_exits_quickly(tmp_path, sig):
    d = Chatd(tmp_path, threads=2)
    c = d.client()
    try:
        for i in range(4):
            c.login(i, f"s{i}")
        join_route(c, range(4), 3)
        c.ok("new 9 " + b"x".hex())
        c.ok("tcp 9")  # mid-handshake: just closed
        rc, took = d.stop(sig)
        assert rc == 0, d.stderr()
        assert took < 2.0
        for i in range(4):
            assert c.recv(i, 2000) == "frame BYE reason=1"
            assert c.recv(i, 2000) == "eof"
        assert c.cmd("waiteof 9 2000").startswith("ok")
        text = d.log_text()
        assert re.search(r" info stopping signal=SIG(TERM|INT)", text)
        assert re.search(r" close .*reason=shutdown", text)
        assert text.rstrip().endswith("info stop reason=signal")
    finally:
        c.close()


def test_injection_strings_escaped_on_one_line(tmp_path):
    """D8 with --log-identities plain: whatever names the relay accepts or
    refuses, every record stays one escaped line."""
    d = Chatd(tmp_path, "--log-identities", "plain", metrics=False, threads=1)
    c = d.client()
    evil = ["eve\ninjected 2026-01-01T00:00:00.000Z info auth_ok user=admin", "cr\rreturn",
            "\x1b[2Jclear", "\x1b]52;c;SGVsbG8=\x07", "abc\u202efdp.exe", "zoe\u202e"]
    try:
        for i, name in enumerate(evil):
            out = c.cmd(f"login {i} {name.encode().hex()}")
            assert out.startswith(("ok", "err frame ERROR code=3")), out
        c.login(20, "plainname")
        # Allowed by the name rules, but an attempt to forge fields: it
        # must come out quoted with its quote and backslash escaped.
        c.login(21, 'eve" user=admin \\ x')
    finally:
        c.close()
        assert d.stop()[0] == 0
    raw = d.log.read_bytes()
    assert b"\x1b" not in raw and b"\r" not in raw and "\u202e".encode() not in raw
    lines = raw.decode().splitlines()
    assert all(LINE_RE.match(ln) for ln in lines)
    assert not any(ln.startswith("injected") for ln in lines)
    assert re.search(r" auth_ok .*name=plainname", raw.decode())
    assert re.search(r' auth_ok worker=0 conn=\d+ user=[a-z2-7]{32} '
                     r'name="eve\\" user=admin \\\\ x" value=\d+$', raw.decode(), re.M)
    # Accepted names appear escaped, refused ones are logged as failures.
    for name in evil:
        if name.encode() in raw:
            raise AssertionError(f"raw name {name!r} in the log")
    assert len(re.findall(r" (register_fail|auth_ok) ", raw.decode())) >= len(evil)
