#!/usr/bin/env python3
"""End-to-end: the guide's access-control file, seen from clients.

The daemon reads `[security] access_control_file`; its country lists use a
small location database this test writes with libloc's own writer
(location_db.py), mapping documentation networks to countries — and
127.0.0.0/8 to one as well, which must never count: loopback and private
networks are in no country.

- a sender domain of block_domains (or a subdomain) gets 550 5.7.1 at MAIL
  FROM on the MX; other senders, the null sender and a logged-in user of a
  blocked domain on submission get through;
- clients (their address given by a trusted proxy's PROXY header, v1 and
  v2, IPv4 and IPv6) of a blocked country are refused at connect with each
  protocol's answer: SMTP 554 and then only QUIT (RFC 5321 3.1), IMAP
  BYE, POP3 -ERR; the refusals are counted in /metrics;
- SIGHUP replaces the lists (an allow list: every other country, and
  addresses of no country, refused); a bad file is refused with its file,
  line, key and reason, and the rules in force stay.
"""
import os
import poplib
import signal
import smtplib
import socket
import struct
import subprocess
import tempfile
import unittest
import urllib.request

from mailtest import MailServer, ctl, free_port, inbox_count, tls_client
from test_daemon import A3MAILER
from test_security import greeting, source, until

HERE = os.path.dirname(os.path.abspath(__file__))


def v1(client, port):
    family = "TCP6" if ":" in client else "TCP4"
    server = "::1" if ":" in client else "127.0.0.1"
    return ("PROXY %s %s %s 40000 %d\r\n" % (family, client, server, port)).encode()


def v2(client, port):
    body = socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40001,
                                                                                   port)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def proxied(port, header, then=b"", timeout=5):
    """What a client behind the trusted proxy (127.0.0.1) reads after its
    header and `then`, until the daemon closes or goes quiet."""
    with source("127.0.0.1")("127.0.0.1", port, timeout) as s:
        s.sendall(header + then)
        s.settimeout(timeout)
        out = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
                if not then and out.endswith(b"\r\n"):
                    break
        except (socket.timeout, ConnectionResetError):
            pass
        return out


class AccessControl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="a3-e2e-access-")
        cls.db = os.path.join(cls.dir.name, "location.db")
        subprocess.run(["/usr/bin/python3", os.path.join(HERE, "location_db.py"), cls.db,
                        "198.51.100.0/24=DE", "203.0.113.0/24=FR", "2001:db8:1::/48=JP",
                        "127.0.0.0/8=FR"], check=True, timeout=60)
        cls.access = os.path.join(cls.dir.name, "access_control.toml")
        cls.write_access('block_domains = ["spam.example", "example.test"]\n'
                         'block_countries = ["FR"]\n')
        cls.ports = {p: free_port() for p in ("smtp", "submission", "imap", "pop3")}
        cls.behind = {p: free_port() for p in ("smtp", "imap", "pop3")}
        cls.monitoring = free_port()
        extra = "".join('[[server.listener]]\nprotocol = "%s"\nbind = "127.0.0.1:%d"\n'
                        'proxy_protocol = true\n' % lp for lp in cls.behind.items())
        extra += ('[monitoring]\nenabled = true\nbind = "127.0.0.1:%d"\n'
                  '[smtp]\ncheck_spf = false\ncheck_dkim = false\ncheck_dmarc = false\n'
                  '[outbound]\nresolvers = ["127.0.0.1@9"]\n' % cls.monitoring)
        security = ('trusted_proxies = ["127.0.0.1/32"]\naccess_control_file = "%s"\n'
                    % cls.access)
        cls.server = MailServer("a3-e2e-access-", list(cls.ports.items()), ["alice"],
                                "started:", outbound=extra, security=security)
        cls.config = cls.server.config

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.dir.cleanup()

    @classmethod
    def write_access(cls, rules):
        with open(cls.access, "w") as f:
            f.write('[access_control]\n%scountry_database = "location.db"\n' % rules)

    def reload(self, rules, client, answer):
        """The access file with `rules`, and SIGHUP; waits until SMTP
        greets `client` (a v1 client address) with `answer`."""
        self.write_access(rules)
        self.server.daemon.proc.send_signal(signal.SIGHUP)
        until(lambda: answer in proxied(self.behind["smtp"], v1(client, 25)), 10, "the reload")

    def metric(self, name, **labels):
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.monitoring,
                                      timeout=10).read().decode()
        total = 0.0
        for line in body.splitlines():
            if line.startswith(name + "{") and all(
                    ('%s="%s"' % kv) in line for kv in labels.items()):
                total += float(line.rpartition(" ")[2])
        return total

    def mx(self, address="127.0.0.2"):
        return smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=10,
                            local_hostname="client.example", source_address=(address, 0))

    def test_a_blocked_sender_domains_get_550_at_mail_from(self):
        before = inbox_count(self.config, "alice@example.test")
        with self.mx() as s:
            s.ehlo()
            for sender in ("someone@spam.example", "x@MX.Spam.Example", "alice@example.test"):
                code, text = s.mail(sender)
                self.assertEqual(code, 550, text)
                self.assertTrue(text.startswith(b"5.7.1 Sender domain "), text)
                self.assertIn(b"is blocked here", text)
            # Not a subdomain: another domain that ends alike.
            s.sendmail("someone@notspam.example", ["alice@example.test"],
                       b"Subject: allowed\r\n\r\nhi\r\n")
            # Bounces have no sender domain.
            s.sendmail("<>", ["alice@example.test"], b"Subject: a bounce\r\n\r\nhi\r\n")
        until(lambda: inbox_count(self.config, "alice@example.test") == before + 2, 10,
              "the two messages")
        self.assertGreaterEqual(
            self.metric("a3_smtp_messages_total", result="rejected", reason="sender_domain"), 3)
        # A logged-in user of a blocked domain sends on submission.
        with smtplib.SMTP("127.0.0.1", self.ports["submission"], timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["alice@example.test"],
                       b"Subject: from alice\r\n\r\nhi\r\n")
        until(lambda: inbox_count(self.config, "alice@example.test") == before + 3, 10,
              "alice's own message")

    def test_b_a_blocked_country_is_refused_at_connect(self):
        before = self.metric("a3_connections_total", result="refused_country")
        # SMTP: 554 and the reason, 503 to all but QUIT, 221 to QUIT.
        out = proxied(self.behind["smtp"], v1("203.0.113.9", 25),
                      b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n")
        lines = out.split(b"\r\n")
        self.assertRegex(lines[0], rb"^554 \S+ Connections from country FR are refused here$")
        self.assertTrue(lines[1].startswith(b"503 5.7.1 Connections from country FR"), out)
        self.assertTrue(lines[2].startswith(b"503 5.7.1 "), out)
        self.assertTrue(lines[3].startswith(b"221 "), out)
        # IMAP through a v2 header, POP3 through v1: refused and closed.
        self.assertEqual(proxied(self.behind["imap"], v2("203.0.113.10", 143)),
                         b"* BYE Connections from country FR are refused here\r\n")
        self.assertEqual(proxied(self.behind["pop3"], v1("203.0.113.11", 110)),
                         b"-ERR [SYS/PERM] Connections from country FR are refused here\r\n")
        # Other countries, addresses of no country, IPv6, and loopback
        # (FR in the database, but in no country) are let in.
        for client in ("198.51.100.7", "192.0.2.1", "2001:db8:1::5"):
            self.assertTrue(proxied(self.behind["smtp"], v1(client, 25)).startswith(b"220 "),
                            client)
        self.assertTrue(proxied(self.behind["imap"], v2("198.51.100.8", 143)).startswith(
            b"* OK"))
        for port in self.ports.values():
            self.assertNotEqual(greeting(port, "127.0.0.3"), b"")
        self.assertTrue(greeting(self.ports["pop3"], "127.0.0.3").startswith(b"+OK"))
        self.assertEqual(self.metric("a3_connections_total", result="refused_country"),
                         before + 3)

    def test_c_sighup_replaces_the_lists(self):
        try:
            self.reload('allow_countries = ["DE"]\n', "2001:db8:1::5", b"JP are not accepted")
            out = proxied(self.behind["smtp"], v1("2001:db8:1::5", 25))
            self.assertIn(b"Connections from country JP are not accepted here", out)
            out = proxied(self.behind["smtp"], v1("203.0.113.9", 25))
            self.assertIn(b"Connections from country FR are not accepted here", out)
            out = proxied(self.behind["imap"], v2("192.0.2.1", 143))
            self.assertEqual(out, b"* BYE Connections from addresses of no known country are "
                                  b"refused here\r\n")
            self.assertTrue(proxied(self.behind["smtp"], v1("198.51.100.7", 25)).startswith(
                b"220 "))
            self.assertTrue(greeting(self.ports["imap"], "127.0.0.4").startswith(b"* OK"))
            # The domain lists went with the old file.
            with self.mx() as s:
                s.ehlo()
                self.assertEqual(s.mail("someone@spam.example")[0], 250)
        finally:
            self.reload('block_domains = ["spam.example", "example.test"]\n'
                        'block_countries = ["FR"]\n', "2001:db8:1::5", b"220 ")
        self.assertTrue(proxied(self.behind["smtp"], v1("2001:db8:1::5", 25)).startswith(b"220 "))

    def test_d_a_bad_file_is_refused_and_the_rules_stay(self):
        with open(self.access) as f:
            good = f.read()
        failures = self.metric("a3_config_reloads_total", result="failure")
        try:
            with open(self.access, "w") as f:
                f.write('[access_control]\nblock_countries = ["France"]\n')
            r = subprocess.run([A3MAILER, "--config", self.config, "--check-config"],
                               capture_output=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(('%s:2:20: access_control.block_countries: "France" is not a '
                           'two-letter country code' % self.access).encode(), r.stderr)
            self.server.daemon.proc.send_signal(signal.SIGHUP)
            until(lambda: self.metric("a3_config_reloads_total", result="failure") > failures,
                  10, "the refused reload")
            self.assertTrue(proxied(self.behind["smtp"], v1("203.0.113.9", 25)).startswith(
                b"554 "))
            # A database that is not one passes the loader but not the
            # start or a reload: --check-config says so, and a SIGHUP that
            # also blocks an address applies nothing.
            with open(os.path.join(self.dir.name, "garbage.db"), "w") as f:
                f.write("not a location database\n")
            with open(self.access, "w") as f:
                f.write('[access_control]\nblock_countries = ["FR"]\n'
                        'country_database = "garbage.db"\n')
            r = subprocess.run([A3MAILER, "--config", self.config, "--check-config"],
                               capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(b"access_control.country_database: ", r.stderr)
            self.assertIn(b"garbage.db: not a libloc location database", r.stderr)
            with open(self.config) as f:
                config = f.read()
            with open(self.config, "w") as f:
                f.write(config.replace("[security]\n", '[security]\nblocked_ips = ["127.0.0.9"]\n', 1))
            failures = self.metric("a3_config_reloads_total", result="failure")
            try:
                self.server.daemon.proc.send_signal(signal.SIGHUP)
                until(lambda: self.metric("a3_config_reloads_total", result="failure") > failures,
                      10, "the refused reload")
                self.assertTrue(greeting(self.ports["smtp"], "127.0.0.9").startswith(b"220 "))
                self.assertTrue(proxied(self.behind["smtp"], v1("203.0.113.9", 25)).startswith(
                    b"554 "))
            finally:
                with open(self.config, "w") as f:
                    f.write(config)
        finally:
            with open(self.access, "w") as f:
                f.write(good)


if __name__ == "__main__":
    unittest.main(verbosity=2)
