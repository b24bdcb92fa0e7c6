#!/usr/bin/env python3
"""End-to-end: the guard at the door, seen from clients.

Real clients (smtplib, imaplib, poplib and raw sockets) connect from
distinct loopback source addresses (127.0.0.2, 127.0.0.3, ...), each
playing a remote host, to a daemon whose own loopback exemption is
narrowed to 127.0.0.1:

- a configured blocked network gets nothing, not even a greeting, on every
  listener; SIGHUP changes the list; the refusals are counted in /metrics;
- `a3ctl ban add|list|remove` bans and unbans a network on the running
  daemon;
- failed logins, unknown recipients and protocol errors from one address
  ban it automatically for ban_duration_s; it is let in again once the ban
  expires, and the sweep lifts it with an event;
- every ban and lift is in the log and in the audit trail in a real
  PostgreSQL: who, when, why;
- the guide's rate limit (requests per window per IP: connections and
  commands) answers each protocol's temporary error, and the hourly
  message limits refuse MAIL FROM with 451 4.7.0, by address on the MX and
  by account on submission; both let the client in again afterwards.
"""
import imaplib
import json
import os
import poplib
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from mailtest import MailServer, ctl, free_port, tls_client

PG_SH = os.path.join(os.environ.get("A3_SOURCE_DIR", os.path.join(os.path.dirname(__file__),
                                                                   "..", "..")),
                     "tools", "pg.sh")
BAN_S = 4  # [security] ban_duration_s
REQUESTS, WINDOW = 200, 2  # max_requests_per_window, rate_limit_window


def source(address):
    """A connection factory from `address` (any 127.0.0.0/8 address)."""
    def connect(host, port, timeout=10):
        return socket.create_connection((host, port), timeout, source_address=(address, 0))
    return connect


class Imap(imaplib.IMAP4):
    """An IMAP client from `address`, after STARTTLS (LOGIN needs TLS)."""
    def __init__(self, port, address):
        self.address = address
        super().__init__("127.0.0.1", port, timeout=10)
        self.starttls(tls_client())

    def _create_socket(self, timeout):
        return source(self.address)(self.host, self.port, timeout)


class Pop3(poplib.POP3):
    def __init__(self, port, address):
        self.address = address
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout):
        return source(self.address)(self.host, self.port, timeout)


def greeting(port, address, timeout=5):
    """What the daemon says first to a client from `address`: its greeting,
    or b"" when it closes the connection without a word."""
    with source(address)("127.0.0.1", port, timeout) as s:
        s.settimeout(timeout)
        try:
            return s.recv(512)
        except ConnectionResetError:
            return b""


def until(predicate, seconds=10, what="the condition"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


class Security(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = tempfile.mkdtemp(prefix="a3-pg-security-")
        url = subprocess.run([PG_SH, "start", cls.pg, str(free_port())], check=True,
                             capture_output=True, timeout=120).stdout.decode().strip()
        cls.ports = {p: free_port() for p in ("smtp", "submission", "imap", "pop3")}
        cls.monitoring = free_port()
        security = ('blocked_ips = ["127.0.0.5/32", "127.0.1.0/24"]\n'
                    "ban_after_auth_failures = 3\nban_after_unknown_recipients = 3\n"
                    "ban_after_protocol_errors = 5\nban_duration_s = %d\n"
                    'exempt_networks = ["127.0.0.1/32"]\n'
                    "enable_rate_limiting = true\nmax_requests_per_window = %d\n"
                    "rate_limit_window = %d\nmax_messages_per_hour_per_ip = 2\n"
                    "max_messages_per_hour_per_account = 2\n" % (BAN_S, REQUESTS, WINDOW))
        extra = ('[database]\nurl = "%s"\n[monitoring]\nenabled = true\nbind = "127.0.0.1:%d"\n'
                 '[smtp]\ncheck_spf = false\ncheck_dkim = false\ncheck_dmarc = false\n'
                 '[outbound]\nresolvers = ["127.0.0.1@9"]\n' % (url, cls.monitoring))
        cls.server = MailServer("a3-e2e-security-", list(cls.ports.items()), ["alice"],
                                "started:", outbound=extra, security=security)
        cls.config = cls.server.config

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        subprocess.run([PG_SH, "stop", cls.pg], timeout=60)
        subprocess.run(["rm", "-rf", cls.pg])

    def metric(self, name, **labels):
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.monitoring,
                                      timeout=10).read().decode()
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        total = 0.0
        for line in body.splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            got = head[len(name):].strip("{}")
            if all(('%s="%s"' % kv) in got.split(",") for kv in labels.items()) or not want:
                total += float(value)
        return total

    def events(self, kind):
        out = ctl(self.config, "log", "dump", "--json").stdout.decode().splitlines()
        events = [json.loads(line)["event"] for line in out]
        return [e for e in events if e["kind"] == kind]

    def test_a_blocked_network_gets_nothing_on_every_listener(self):
        before = self.metric("a3_connections_total", result="refused_blocked")
        for proto, port in self.ports.items():
            self.assertEqual(greeting(port, "127.0.0.5"), b"", proto)
            self.assertEqual(greeting(port, "127.0.1.77"), b"", proto)
            self.assertNotEqual(greeting(port, "127.0.0.6"), b"", proto)
        self.assertEqual(self.metric("a3_connections_total", result="refused_blocked"),
                         before + 8)
        # SIGHUP: another list, in force for the next connection.
        with open(self.config) as f:
            text = f.read()
        edited = text.replace('blocked_ips = ["127.0.0.5/32", "127.0.1.0/24"]',
                              'blocked_ips = ["127.0.0.6"]')
        self.assertNotEqual(edited, text)
        try:
            with open(self.config, "w") as f:
                f.write(edited)
            self.server.daemon.proc.send_signal(signal.SIGHUP)
            until(lambda: greeting(self.ports["imap"], "127.0.0.6") == b"", what="the reload")
            self.assertTrue(greeting(self.ports["smtp"], "127.0.0.5").startswith(b"220 "))
        finally:
            with open(self.config, "w") as f:
                f.write(text)
            self.server.daemon.proc.send_signal(signal.SIGHUP)
            until(lambda: greeting(self.ports["imap"], "127.0.0.5") == b"", what="the reload")

    def test_b_an_operator_bans_and_unbans_a_network(self):
        r = ctl(self.config, "ban", "add", "127.0.2.0/24", "--reason", "abuse report 4711")
        self.assertEqual(r.returncode, 0, r.stderr)
        # a3ctl returns once the daemon applied the event: in force now.
        for port in self.ports.values():
            self.assertEqual(greeting(port, "127.0.2.9"), b"")
        self.assertNotEqual(greeting(self.ports["pop3"], "127.0.3.9"), b"")
        listed = ctl(self.config, "ban", "list", "--json").stdout.decode().splitlines()
        bans = {b["network"]: b for b in map(json.loads, listed)}
        self.assertIn("127.0.2.0/24", bans)
        self.assertEqual(bans["127.0.2.0/24"]["reason"], "abuse report 4711")
        self.assertEqual(bans["127.0.2.0/24"]["rule"], "manual")
        self.assertIsNone(bans["127.0.2.0/24"]["expires"])
        self.assertTrue(bans["127.0.2.0/24"]["by"].startswith("admin "))
        r = ctl(self.config, "ban", "remove", "127.0.2.0/24")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(greeting(self.ports["imap"], "127.0.2.9").startswith(b"* OK"))
        # Bad input: a clear message, exit status 2 or 1, nothing appended.
        r = ctl(self.config, "ban", "add", "127.0.0.300")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"not an address or CIDR network", r.stderr)
        r = ctl(self.config, "ban", "remove", "127.0.9.9")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"is not banned", r.stderr)
        r = ctl(self.config, "ban", "add", "127.0.9.9", "--for", "soon")
        self.assertEqual(r.returncode, 2)
        # A timed ban lapses by itself.
        r = ctl(self.config, "ban", "add", "127.0.4.4", "--for", "2s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(greeting(self.ports["smtp"], "127.0.4.4"), b"")
        until(lambda: greeting(self.ports["smtp"], "127.0.4.4").startswith(b"220 "), 6,
              "the timed ban to lapse")

    def test_c_failed_logins_ban_the_address_until_it_expires(self):
        bad = "127.0.0.8"
        for attempt in range(2):
            with Imap(self.ports["imap"], bad) as imap:
                with self.assertRaises(imaplib.IMAP4.error):
                    imap.login("alice@example.test", "wrong")
        # The third failure: NO, then BYE with the reason, and the close.
        imap = Imap(self.ports["imap"], bad)
        with self.assertRaises(imaplib.IMAP4.error):
            imap.login("alice@example.test", "wrong")
        with self.assertRaises(imaplib.IMAP4.abort) as bye:
            imap.noop()
        self.assertIn("3 failed logins in 600 s; banned for %d s" % BAN_S, str(bye.exception))
        imap.sock.close()
        banned_at = time.time()
        # Every protocol refuses it now, before a greeting, so not even the
        # right password gets anywhere; other addresses are not affected.
        refused = self.metric("a3_connections_total", result="refused_banned")
        for port in self.ports.values():
            self.assertEqual(greeting(port, bad), b"")
        self.assertEqual(self.metric("a3_connections_total", result="refused_banned"),
                         refused + 4)
        self.assertGreaterEqual(self.metric("a3_bans_active"), 1)
        with self.assertRaises((OSError, poplib.error_proto)):
            Pop3(self.ports["pop3"], bad)
        with Imap(self.ports["imap"], "127.0.0.9") as imap:
            imap.login("alice@example.test", "pw")
        # Lifted once it expires: the sweep appends BanLifted "expired".
        until(lambda: greeting(self.ports["imap"], bad).startswith(b"* OK"), BAN_S + 5,
              "the ban to expire")
        self.assertGreaterEqual(time.time() - banned_at, BAN_S - 1)
        with Imap(self.ports["imap"], bad) as imap:
            imap.login("alice@example.test", "pw")
        until(lambda: any(e["body"]["network"] == bad + "/32"
                          for e in self.events("BanLifted")), 10, "the BanLifted event")
        ban = [e for e in self.events("BanAdded") if e["body"]["network"] == bad + "/32"]
        self.assertEqual(len(ban), 1)
        self.assertEqual(ban[0]["body"]["rule"], "auth_failures")
        self.assertEqual(ban[0]["actor"]["protocol"], "system")
        self.assertEqual(ban[0]["actor"]["remote_ip"], bad)
        self.assertIn("3 failed logins", ban[0]["body"]["reason"])

    def test_d_probing_unknown_recipients_bans_the_address(self):
        prober = "127.0.0.10"
        with smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=10,
                          source_address=(prober, 0)) as s:
            s.ehlo("prober.example")
            s.mail("x@example.net")
            self.assertEqual(s.rcpt("alice@example.test")[0], 250)
            self.assertEqual(s.rcpt("nobody1@example.test")[0], 550)
            self.assertEqual(s.rcpt("nobody2@example.test")[0], 550)
            self.assertEqual(s.rcpt("nobody3@example.test")[0], 550)
            # The 550 was answered, then 421 and the close.
            code, text = s.getreply()
            self.assertEqual(code, 421, text)
            self.assertIn(b"3 unknown recipients", text)
        self.assertEqual(greeting(self.ports["smtp"], prober), b"")
        self.assertEqual(greeting(self.ports["submission"], prober), b"")

    def test_e_protocol_errors_ban_the_address(self):
        noisy = "127.0.0.11"
        with source(noisy)("127.0.0.1", self.ports["pop3"]) as s:
            f = s.makefile("rb")
            self.assertTrue(f.readline().startswith(b"+OK"))
            replies = []
            for i in range(5):
                s.sendall(b"JUNK%d\r\n" % i)
                replies.append(f.readline())
            self.assertTrue(all(r.startswith(b"-ERR") for r in replies), replies)
            bye = f.readline()
            self.assertTrue(bye.startswith(b"-ERR [SYS/TEMP] 5 protocol errors"), bye)
            self.assertEqual(f.readline(), b"")
        self.assertEqual(greeting(self.ports["imap"], noisy), b"")
        # The exempt address (the tests' own 127.0.0.1) never is banned.
        for i in range(3):
            with source("127.0.0.1")("127.0.0.1", self.ports["pop3"]) as s:
                f = s.makefile("rb")
                f.readline()
                for j in range(5):
                    s.sendall(b"JUNK\r\n")
                    f.readline()
        self.assertNotEqual(greeting(self.ports["pop3"], "127.0.0.1"), b"")

    def test_g_the_rate_limit_answers_a_temporary_error_then_lets_in(self):
        fast = "127.0.0.12"
        with source(fast)("127.0.0.1", self.ports["imap"]) as s:
            f = s.makefile("rb")
            self.assertTrue(f.readline().startswith(b"* OK"))
            # The connection was one request; REQUESTS - 1 NOOPs are fine.
            s.sendall(b"".join(b"n%d NOOP\r\n" % i for i in range(REQUESTS + 5)))
            replies = [f.readline() for _ in range(REQUESTS + 5)]
            ok = [r for r in replies if b" OK " in r]
            limited = [r for r in replies if b" NO [LIMIT] " in r]
            self.assertEqual(len(ok), REQUESTS - 1, replies[-8:])
            self.assertEqual(len(limited), 6, replies[-8:])
            # A new connection now: the protocol's "too many" line.
            self.assertIn(b"* BYE", greeting(self.ports["imap"], fast))
            s.sendall(b"z LOGOUT\r\n")  # LOGOUT always runs
            self.assertTrue(f.readline().startswith(b"* BYE"))
        time.sleep(WINDOW + 0.2)
        self.assertTrue(greeting(self.ports["imap"], fast).startswith(b"* OK"))
        with smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=10,
                          source_address=("127.0.0.15", 0)) as smtp:
            for i in range(REQUESTS - 1):
                self.assertEqual(smtp.noop()[0], 250)
            code, text = smtp.noop()
            self.assertEqual((code, text[:5]), (451, b"4.7.0"), text)
        with source("127.0.0.16")("127.0.0.1", self.ports["pop3"]) as s:
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"CAPA\r\n" * REQUESTS)  # multi-line answers, then the limit
            line, answers = b"", 0
            while not line.startswith(b"-ERR"):
                line = f.readline()
                self.assertNotEqual(line, b"", "closed before the limit")
                answers += line == b".\r\n"
            self.assertTrue(line.startswith(b"-ERR [SYS/TEMP] Too many requests"), line)
            self.assertEqual(answers, REQUESTS - 1)

    def test_h_hourly_message_limits(self):
        body = b"Subject: limit\r\n\r\nhello\r\n"
        with smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=10,
                          source_address=("127.0.0.13", 0)) as s:
            s.sendmail("a@example.net", ["alice@example.test"], body)
            s.sendmail("a@example.net", ["alice@example.test"], body)
            code, text = s.mail("a@example.net")
            self.assertEqual(code, 451, text)
            self.assertIn(b"4.7.0 Too many messages from your address this hour", text)
        # Another address still may; so may the account on submission,
        # until its own limit.
        with smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=10,
                          source_address=("127.0.0.17", 0)) as s:
            s.sendmail("b@example.net", ["alice@example.test"], body)
        with smtplib.SMTP("127.0.0.1", self.ports["submission"], timeout=10,
                          source_address=("127.0.0.14", 0)) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["alice@example.test"], body)
            s.sendmail("alice@example.test", ["alice@example.test"], body)
            code, text = s.mail("alice@example.test")
            self.assertEqual(code, 451, text)
            self.assertIn(b"Too many messages from this account this hour", text)

    def test_f_the_audit_trail_says_who_banned_whom_when_and_why(self):
        def rows(kind):
            r = ctl(self.config, "audit", "--kind", kind, "--json")
            return [json.loads(line) for line in r.stdout.decode().splitlines()]
        added = until(lambda: [r for r in rows("BanAdded")
                               if r["event"]["body"]["network"] == "127.0.0.10/32"], 20,
                      "the automatic ban in the audit trail")
        self.assertEqual(added[0]["protocol"], "system")
        self.assertEqual(added[0]["remote_ip"], "127.0.0.10")
        self.assertEqual(added[0]["event"]["body"]["rule"], "unknown_recipients")
        manual = until(lambda: [r for r in rows("BanAdded")
                                if r["event"]["body"]["network"] == "127.0.2.0/24"], 20,
                       "the operator's ban in the audit trail")
        self.assertEqual(manual[0]["protocol"], "admin")
        self.assertEqual(manual[0]["event"]["body"]["reason"], "abuse report 4711")
        lifted = until(lambda: [r for r in rows("BanLifted")
                                if r["event"]["body"]["network"] == "127.0.2.0/24"], 20,
                       "the operator's lift in the audit trail")
        self.assertEqual(lifted[0]["protocol"], "admin")
        self.assertTrue(self.metric("a3_bans_total", rule="auth_failures") >= 1)


if __name__ == "__main__":
    unittest.main()
