#!/usr/bin/env python3
"""End-to-end POP3: the real daemon with Python's poplib (plain with STLS,
POP3S), SASL PLAIN on a raw socket, and fetchmail downloading and deleting
mail delivered through SMTP, checked byte for byte."""
import base64
import os
import poplib
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from mailtest import MailServer, ctl, deliver, free_port, tls_client





class Pop3Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mx, cls.pop3, cls.pop3s = free_port(), free_port(), free_port()
        cls.server = MailServer("a3-e2e-pop3-", [("smtp", cls.mx), ("pop3", cls.pop3), ("pop3s", cls.pop3s)],
                                ("alice", "bob", "carol", "dave"), "pop3: listening on 127.0.0.1:%d" % cls.pop3s)
        cls.config, cls.daemon = cls.server.config, cls.server.daemon
        cls.tmp = cls.server.tmp

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def deliver(self, to, body):
        deliver(self.mx, to, body, config=self.config)

    def test_pop3s_retr_is_byte_for_byte_and_quit_deletes(self):
        body = b"Subject: pop\r\n\r\n.leading dot\r\nsecond line\r\n"
        self.deliver("alice@example.test", body)
        self.deliver("alice@example.test", b"Subject: two\r\n\r\nx\r\n")
        p = poplib.POP3_SSL("127.0.0.1", self.pop3s, context=tls_client(), timeout=10)
        p.user("alice@example.test")
        p.pass_("pw")
        count, size = p.stat()
        self.assertEqual(count, 2)
        resp, lines, octets = p.retr(1)
        stored = b"\r\n".join(lines) + b"\r\n"
        self.assertTrue(stored.startswith(b"Received: from "), stored[:80])
        self.assertTrue(stored.endswith(b"\r\n" + body), stored)
        uidl = p.uidl()[1]
        self.assertEqual(len(uidl), 2)
        resp, top, _ = p.top(1, 0)
        self.assertEqual(top[-1], b"")  # the blank line after the header
        p.dele(1)
        p.quit()
        p = poplib.POP3_SSL("127.0.0.1", self.pop3s, context=tls_client(), timeout=10)
        p.user("alice@example.test")
        p.pass_("pw")
        self.assertEqual(p.stat()[0], 1)
        self.assertEqual(p.uidl()[1][0].split()[1], uidl[1].split()[1],
                         "UIDL stays the same across sessions")
        p.quit()

    def test_stls_and_plaintext_rules(self):
        p = poplib.POP3("127.0.0.1", self.pop3, timeout=10)
        caps = p.capa()
        self.assertIn("STLS", caps)
        self.assertNotIn("USER", caps)
        with self.assertRaises(poplib.error_proto):
            p.user("bob@example.test")
        p.stls(context=tls_client())
        caps = p.capa()
        self.assertIn("USER", caps)
        self.assertNotIn("STLS", caps)
        p.user("bob@example.test")
        p.pass_("pw")
        p.quit()

    def test_stls_injection_gets_no_reply(self):
        s = socket.create_connection(("127.0.0.1", self.pop3), timeout=10)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"STLS\r\nCAPA\r\n")
        self.assertTrue(f.readline().startswith(b"+OK"))
        t = tls_client().wrap_socket(s, server_hostname="localhost")
        t.sendall(b"NOOP\r\n")
        self.assertTrue(t.recv(1000).startswith(b"-ERR"), "the injected CAPA got no reply")
        t.close()

    def test_sasl_plain_in_use_and_failed_logins(self):
        def sasl(user):
            s = tls_client().wrap_socket(socket.create_connection(("127.0.0.1", self.pop3s),
                                                                  timeout=10),
                                         server_hostname="localhost")
            f = s.makefile("rb")
            f.readline()
            ir = base64.b64encode(b"\0" + user.encode() + b"\0pw")
            s.sendall(b"AUTH PLAIN " + ir + b"\r\n")
            return s, f, f.readline()

        a, fa, line = sasl("carol@example.test")
        self.assertTrue(line.startswith(b"+OK"), line)
        b, fb, line = sasl("carol@example.test")
        self.assertTrue(line.startswith(b"-ERR [IN-USE]"), line)
        a.sendall(b"QUIT\r\n")
        self.assertTrue(fa.readline().startswith(b"+OK"))
        b.sendall(b"AUTH PLAIN " + base64.b64encode(b"\0carol@example.test\0pw") + b"\r\n")
        self.assertTrue(fb.readline().startswith(b"+OK"), "free again after QUIT")
        b.close()
        p = poplib.POP3_SSL("127.0.0.1", self.pop3s, context=tls_client(), timeout=10)
        p.user("carol@example.test")
        with self.assertRaises(poplib.error_proto) as e:
            p.pass_("wrong")
        self.assertIn(b"[AUTH]", e.exception.args[0])
        r = ctl(self.config, "log", "dump")
        self.assertRegex(r.stdout.decode(), r"AuthFailed .* by pop3 from 127\.0\.0\.1")

    def test_fetchmail_downloads_and_deletes(self):
        if not shutil.which("fetchmail"):
            self.fail("fetchmail is not installed (tools/packages.txt)")
        bodies = [b"Subject: fetch %d\r\nMessage-ID: <f%d@example.net>\r\n\r\nbody %d\r\n.dot\r\n"
                  % (i, i, i) for i in range(3)]
        for b in bodies:
            self.deliver("dave@example.test", b)
        out_dir = os.path.join(self.tmp.name, "fetched")
        os.makedirs(out_dir)
        rc = os.path.join(self.tmp.name, "fetchmailrc")
        with open(rc, "w") as f:
            f.write("poll 127.0.0.1 service %d protocol pop3 auth password\n"
                    "  user 'dave@example.test' password 'pw' ssl sslproto TLS1.2+ no sslcertck\n"
                    "  mda \"/bin/sh -c 'cat > $(mktemp %s/msg.XXXXXX)'\"\n" % (self.pop3s, out_dir))
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=self.tmp.name, FETCHMAILHOME=self.tmp.name)
        r = subprocess.run(["fetchmail", "-f", rc, "--nodetach", "--nosyslog", "-v"],
                           capture_output=True, timeout=60, env=env)
        self.assertIn(r.returncode, (0,), r.stdout + r.stderr)
        fetched = []
        for name in sorted(os.listdir(out_dir)):
            with open(os.path.join(out_dir, name), "rb") as fh:
                fetched.append(fh.read())
        self.assertEqual(len(fetched), 3, r.stdout)
        for b in bodies:
            # fetchmail hands the MDA LF line ends and adds its own header.
            want = b.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
            self.assertTrue(any(f.endswith(b"\n\n" + want) or f.endswith(want) for f in fetched),
                            (b, fetched))
            subject = b.split(b"\r\n")[0]
            self.assertTrue(any(subject in f for f in fetched))
        # fetchmail deleted what it downloaded (no "keep").
        p = poplib.POP3_SSL("127.0.0.1", self.pop3s, context=tls_client(), timeout=10)
        p.user("dave@example.test")
        p.pass_("pw")
        self.assertEqual(p.stat()[0], 0)
        p.quit()


if __name__ == "__main__":
    unittest.main(verbosity=2)
