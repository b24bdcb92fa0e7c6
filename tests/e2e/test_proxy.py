#!/usr/bin/env python3
"""End-to-end: the PROXY protocol from trusted proxies only.

Debian's haproxy stands in front of the daemon's proxy_protocol listeners:
SMTP with `send-proxy` (v1), IMAP with `send-proxy-v2`. Clients bound to
distinct loopback addresses connect through it, and the daemon must see
each client's own address:

- in the Received: header of a message, and in the audit events;
- for blocked networks, which refuse a client behind the proxy even though
  the proxy itself is trusted;
- for automatic bans, which ban the client, not the proxy.

A connection to a proxy_protocol listener from outside trusted_proxies is
closed before anything is said; so is one whose header is malformed, or
that sends no header within the deadline. Hand-written v1 and v2 headers
from a trusted address test both versions byte for byte, beside haproxy.
"""
import imaplib
import json
import os
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from mailtest import MailServer, ctl, free_port, tls_client
from test_security import Imap, greeting, source, until

HAPROXY = "/usr/sbin/haproxy"
MAX_CONNECTIONS = 40  # [security] max_connections


def closed_at_once(sock):
    """The peer closes (FIN or RST) without a word."""
    sock.settimeout(5)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def v2_header(src, sport, dst, dport):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


class ProxyProtocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The daemon: proxy_protocol listeners, and a plain one beside them.
        cls.direct = {"smtp": free_port(), "imap": free_port()}
        cls.behind = {"smtp": free_port(), "imap": free_port()}
        cls.front = {"smtp": free_port(), "imap": free_port()}
        extra = "".join('[[server.listener]]\nprotocol = "%s"\nbind = "127.0.0.1:%d"\n'
                        'proxy_protocol = true\n' % (p, port) for p, port in cls.behind.items())
        extra += ('[smtp]\ncheck_spf = false\ncheck_dkim = false\ncheck_dmarc = false\n'
                  '[outbound]\nresolvers = ["127.0.0.1@9"]\n')
        security = ('trusted_proxies = ["127.0.0.1/32"]\nblocked_ips = ["127.0.0.45"]\n'
                    'ban_after_auth_failures = 2\nexempt_networks = []\n'
                    'max_connections = %d\n' % MAX_CONNECTIONS)
        cls.server = MailServer("a3-e2e-proxy-", list(cls.direct.items()), ["alice"], "started:",
                                outbound=extra, security=security)
        cls.config = cls.server.config
        # haproxy in front: v1 for SMTP, v2 for IMAP, to the proxied ports.
        cls.haproxy_dir = tempfile.TemporaryDirectory(prefix="a3-haproxy-")
        conf = os.path.join(cls.haproxy_dir.name, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write("global\n  maxconn 200\n"
                    "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n"
                    "  timeout server 60s\n"
                    "frontend smtp_in\n  bind 127.0.0.1:%d\n  default_backend smtp_out\n"
                    "backend smtp_out\n  server a3 127.0.0.1:%d send-proxy\n"
                    "frontend imap_in\n  bind 127.0.0.1:%d\n  default_backend imap_out\n"
                    "backend imap_out\n  server a3 127.0.0.1:%d send-proxy-v2\n"
                    % (cls.front["smtp"], cls.behind["smtp"], cls.front["imap"],
                       cls.behind["imap"]))
        cls.haproxy = subprocess.Popen([HAPROXY, "-db", "-f", conf], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT)
        def forwarding():
            try:
                return greeting(cls.front["smtp"], "127.0.0.40").startswith(b"220 ")
            except ConnectionRefusedError:  # haproxy is not listening yet
                assert cls.haproxy.poll() is None, cls.haproxy.stdout.read().decode()
                return False
        until(forwarding, 10, "haproxy to forward")

    @classmethod
    def tearDownClass(cls):
        cls.haproxy.terminate()
        cls.haproxy.wait(10)
        cls.haproxy_dir.cleanup()
        cls.server.stop()

    def test_a_smtp_through_haproxy_v1_sees_the_client(self):
        import smtplib
        with smtplib.SMTP("127.0.0.1", self.front["smtp"], timeout=10,
                          local_hostname="client.example", source_address=("127.0.0.41", 0)) as s:
            s.sendmail("someone@example.net", ["alice@example.test"],
                       b"Subject: via haproxy\r\nMessage-ID: <proxy-v1@example.net>\r\n\r\nhi\r\n")
        raw = until(lambda: self.message_with("<proxy-v1@example.net>"), 10, "the message")
        received = raw.split(b"\r\n\r\n")[0]
        self.assertIn(b"from client.example ([127.0.0.41])", received)
        self.assertNotIn(b"127.0.0.1", received)

    def test_b_imap_through_haproxy_v2_is_banned_as_the_client(self):
        bad = "127.0.0.42"
        with Imap(self.front["imap"], bad) as c:
            with self.assertRaises(imaplib.IMAP4.error):
                c.login("alice@example.test", "wrong")
        c = Imap(self.front["imap"], bad)
        with self.assertRaises(imaplib.IMAP4.error):
            c.login("alice@example.test", "wrong")
        with self.assertRaises(imaplib.IMAP4.abort) as bye:
            c.noop()
        self.assertIn("2 failed logins", str(bye.exception))
        c.sock.close()
        # The client behind the proxy is banned, not the proxy.
        bans = [json.loads(line)["network"] for line in
                ctl(self.config, "ban", "list", "--json").stdout.decode().splitlines()]
        self.assertIn(bad + "/32", bans)
        self.assertNotIn("127.0.0.1/32", bans)
        self.assertEqual(greeting(self.front["imap"], bad), b"")
        self.assertTrue(greeting(self.front["imap"], "127.0.0.43").startswith(b"* OK"))
        ban = [e for e in self.events("BanAdded") if e["body"]["network"] == bad + "/32"]
        self.assertEqual(ban[0]["actor"]["remote_ip"], bad)
        failed = [e for e in self.events("AuthFailed") if e["actor"]["remote_ip"] == bad]
        self.assertEqual(len(failed), 2, "the audit trail names the client")

    def test_c_a_blocked_client_behind_the_proxy_is_refused(self):
        # Through haproxy from the blocked address: closed without a word,
        # though the proxy's own address is trusted and not blocked.
        self.assertEqual(greeting(self.front["smtp"], "127.0.0.45"), b"")
        self.assertTrue(greeting(self.front["smtp"], "127.0.0.46").startswith(b"220 "))

    def test_d_untrusted_or_malformed_headers_are_closed(self):
        # From outside trusted_proxies: nothing, even with a valid header.
        with source("127.0.0.50")("127.0.0.1", self.behind["smtp"]) as s:
            s.sendall(b"PROXY TCP4 198.51.100.7 127.0.0.1 4000 25\r\n")
            self.assertTrue(closed_at_once(s))
        for bad in (b"PROXY TCP4 198.51.100.7 127.0.0.1 4000\r\n",
                    b"EHLO no-header.example\r\n",
                    b"\r\n\r\n\x00\r\nQUIT\n\x22\x11\x00\x0c" + bytes(12)):
            with source("127.0.0.1")("127.0.0.1", self.behind["smtp"]) as s:
                s.sendall(bad)
                self.assertTrue(closed_at_once(s), bad)
        # A trusted proxy that never sends its header is closed too.
        start = time.time()
        with source("127.0.0.1")("127.0.0.1", self.behind["imap"]) as s:
            s.settimeout(20)
            self.assertEqual(s.recv(100), b"")
        self.assertGreater(time.time() - start, 9)
        self.assertLess(time.time() - start, 15)
        # The plain listener beside them takes no header at all.
        self.assertTrue(greeting(self.direct["smtp"], "127.0.0.50").startswith(b"220 "))

    def test_e_hand_written_v1_and_v2_headers(self):
        for header in (b"PROXY TCP4 198.51.100.7 127.0.0.1 4000 25\r\n",
                       v2_header("198.51.100.8", 4001, "127.0.0.1", 25)):
            with source("127.0.0.1")("127.0.0.1", self.behind["smtp"]) as s:
                # The header and the client's first command in one write:
                # the reader must take the header and nothing more.
                s.sendall(header + b"EHLO hand.example\r\n")
                f = s.makefile("rb")
                self.assertTrue(f.readline().startswith(b"220 "))
                s.sendall(b"MAIL FROM:<h@example.net>\r\n"
                          b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
                for _ in range(4):
                    line = f.readline()
                    while line[3:4] == b"-":
                        line = f.readline()
                mid = b"<hand-%d@example.net>" % header[0]
                s.sendall(b"Message-ID: " + mid + b"\r\n\r\nhi\r\n.\r\nQUIT\r\n")
                self.assertTrue(f.readline().startswith(b"250 "))
            raw = until(lambda: self.message_with(mid.decode()), 10, "the message")
            want = b"[198.51.100.7]" if header.startswith(b"PROXY") else b"[198.51.100.8]"
            self.assertIn(want, raw.split(b"\r\n\r\n")[0])
        # v2 PROXY without a client address (UNSPEC) is refused.
        with source("127.0.0.1")("127.0.0.1", self.behind["imap"]) as s:
            s.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x21\x00\x00\x00")
            self.assertTrue(closed_at_once(s))
        # A v2 LOCAL header (a health check) keeps the proxy's address.
        with source("127.0.0.1")("127.0.0.1", self.behind["imap"]) as s:
            s.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
            s.settimeout(5)
            self.assertTrue(s.recv(100).startswith(b"* OK"))

    def test_f_connections_waiting_for_headers_are_limited(self):
        # A trusted proxy that opens connections and says nothing: at most
        # max_connections of them wait; the next is closed at once.
        waiting = [source("127.0.0.1")("127.0.0.1", self.behind["imap"])
                   for _ in range(MAX_CONNECTIONS)]
        try:
            time.sleep(0.5)  # all of them accepted
            with source("127.0.0.1")("127.0.0.1", self.behind["imap"]) as s:
                self.assertTrue(closed_at_once(s))
        finally:
            for s in waiting:
                s.close()
        # Once they are gone, a header is read again.
        def answered():
            with source("127.0.0.1")("127.0.0.1", self.behind["imap"]) as s:
                s.sendall(v2_header("198.51.100.9", 4002, "127.0.0.1", 143))
                s.settimeout(5)
                return s.recv(100).startswith(b"* OK")
        until(answered, 10, "a proxied connection to be served again")

    def events(self, kind):
        out = ctl(self.config, "log", "dump", "--json").stdout.decode().splitlines()
        events = [json.loads(line)["event"] for line in out]
        return [e for e in events if e["kind"] == kind]

    def message_with(self, message_id):
        """The message with this Message-ID in alice's INBOX, or None."""
        with imaplib.IMAP4("127.0.0.1", self.direct["imap"], timeout=10) as c:
            c.starttls(tls_client())
            c.login("alice@example.test", "pw")
            c.select("INBOX")
            _, data = c.search(None, "HEADER", "Message-ID", message_id)
            ids = data[0].split()
            if not ids:
                return None
            _, msg = c.fetch(ids[-1], "(BODY.PEEK[])")
            return msg[0][1]


if __name__ == "__main__":
    unittest.main()
