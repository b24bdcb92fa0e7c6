#!/usr/bin/env python3
"""End-to-end quotas: `a3ctl account quota` on the running daemon, IMAP
QUOTA (RFC 9208) with Python's imaplib (GETQUOTAROOT, APPEND and COPY
refused with OVERQUOTA), and SMTP with smtplib and a raw session (452 4.2.2
for a full mailbox at RCPT, 552 5.2.2 for a message larger than the quota,
at RCPT from SIZE= or at the end of DATA)."""
import imaplib
import smtplib
import socket
import time
import unittest

from mailtest import MailServer, ctl, free_port, inbox_count, tls_client


def message(size, subject="q"):
    head = "From: s@example.net\r\nSubject: %s\r\n\r\n" % subject
    line = "x" * 78 + "\r\n"
    return (head + line * (max(0, size - len(head)) // len(line))).encode()


class QuotaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mx, cls.imaps = free_port(), free_port()
        cls.server = MailServer("a3-e2e-quota-", [("smtp", cls.mx), ("imaps", cls.imaps)],
                                ("erin", "frank", "gina"),
                                "imap: listening on 127.0.0.1:%d" % cls.imaps)
        cls.config = cls.server.config

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def quota(self, who, *value):
        r = ctl(self.config, "account", "quota", who + "@example.test", *value)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode()

    def client(self, user):
        c = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=tls_client(), timeout=10)
        c.login(user + "@example.test", "pw")
        return c

    def wait_count(self, who, n):
        deadline = time.time() + 10
        while inbox_count(self.config, who + "@example.test") != n:
            self.assertLess(time.time(), deadline, "%s never had %d messages" % (who, n))
            time.sleep(0.05)

    def test_a3ctl_sets_and_shows_the_quota(self):
        self.assertIn("quota of gina@example.test set to 1048576 bytes", self.quota("gina", "1M"))
        self.assertIn("used=0  limit=1048576", self.quota("gina"))
        self.assertIn("quota of gina@example.test removed", self.quota("gina", "unlimited"))
        self.assertIn("limit=unlimited", self.quota("gina"))
        bad = ctl(self.config, "account", "quota", "gina@example.test", "12Q")
        self.assertEqual(bad.returncode, 2)
        self.assertIn(b"not a size", bad.stderr)

    def test_imap_reports_and_enforces_the_quota(self):
        self.quota("erin", "20K")
        c = self.client("erin")
        self.assertIn(b"QUOTA=RES-STORAGE", c.capability()[1][0])
        typ, data = c.getquotaroot("INBOX")
        self.assertEqual(typ, "OK")
        self.assertEqual(data, [[b'"INBOX" ""'], [b'"" (STORAGE 0 20)']])
        typ, data = c.append("INBOX", None, None, message(15000))
        self.assertEqual(typ, "OK", data)
        typ, data = c.append("INBOX", None, None, message(15000))
        self.assertEqual(typ, "NO")
        self.assertIn(b"[OVERQUOTA]", data[0])
        c.select("INBOX")
        typ, data = c.copy("1", "Trash")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[OVERQUOTA]", data[0])
        typ, data = c.getquota('""')
        self.assertEqual(typ, "OK")
        self.assertIn(b"(STORAGE 14 20)", data[0])
        typ, data = c._simple_command("SETQUOTA", '""', "(STORAGE 100)")
        self.assertEqual(typ, "NO")
        c.logout()
        self.assertIn("messages=1", self.quota("erin"))

    def test_smtp_refuses_a_full_mailbox_per_recipient(self):
        self.quota("frank", "20K")
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
            s.sendmail("s@example.net", ["frank@example.test"], message(15000))
        self.wait_count("frank", 1)
        # smtplib declares SIZE= (RFC 1870): a message that would not fit is
        # refused at RCPT, temporarily (452 4.2.2), for frank alone.
        for size, frank_fits in ((4000, True), (3000, False)):
            with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
                refused = s.sendmail("s@example.net", ["frank@example.test", "gina@example.test"],
                                     message(size))
            if frank_fits:
                self.assertEqual(refused, {})
                # 250 is durable, not yet counted: the next RCPT must see it.
                self.wait_count("frank", 2)
            else:
                self.assertEqual(refused["frank@example.test"][0], 452)
                self.assertIn(b"4.2.2", refused["frank@example.test"][1])
        self.wait_count("gina", 2)
        self.assertEqual(inbox_count(self.config, "frank@example.test"), 2)

    def test_smtp_refuses_a_message_larger_than_the_quota(self):
        self.quota("gina", "10K")
        # smtplib declares SIZE= (RFC 1870): refused at RCPT.
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
                s.sendmail("s@example.net", ["gina@example.test"], message(30000))
        code, text = e.exception.recipients["gina@example.test"]
        self.assertEqual((code, text[:5]), (552, b"5.2.2"))
        # Undeclared: refused at the end of DATA, and nothing delivered.
        before = inbox_count(self.config, "gina@example.test")
        with socket.create_connection(("127.0.0.1", self.mx), timeout=10) as sock:
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"EHLO t\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            sock.sendall(b"MAIL FROM:<s@example.net>\r\nRCPT TO:<gina@example.test>\r\nDATA\r\n")
            self.assertTrue(f.readline().startswith(b"250"))
            self.assertTrue(f.readline().startswith(b"250"))
            self.assertTrue(f.readline().startswith(b"354"))
            sock.sendall(message(30000) + b".\r\n")
            self.assertTrue(f.readline().startswith(b"552 5.2.2"))
            sock.sendall(b"QUIT\r\n")
        time.sleep(0.3)
        self.assertEqual(inbox_count(self.config, "gina@example.test"), before)


if __name__ == "__main__":
    unittest.main()
