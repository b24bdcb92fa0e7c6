#!/usr/bin/env python3
"""End-to-end IMAP: the real daemon with Python's imaplib (plain with
STARTTLS, IMAPS), curl, raw sockets and mbsync, on loopback. Mail comes in
through SMTP and is read back byte for byte."""
import imaplib
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import unittest

from mailtest import MailServer, ctl, deliver, free_port, tls_client





class ImapTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mx, cls.imap, cls.imaps = free_port(), free_port(), free_port()
        cls.server = MailServer("a3-e2e-imap-", [("smtp", cls.mx), ("imap", cls.imap), ("imaps", cls.imaps)],
                                ("alice", "bob", "carol", "dave"), "imap: listening on 127.0.0.1:%d" % cls.imaps)
        cls.config, cls.daemon = cls.server.config, cls.server.daemon
        cls.tmp = cls.server.tmp

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def deliver(self, to, body):
        deliver(self.mx, to, body, config=self.config)

    def client(self, user):
        c = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=tls_client(), timeout=10)
        c.login(user, "pw")
        return c

    def test_smtp_delivery_is_read_back_byte_for_byte(self):
        body = (b"From: Sender <sender@example.net>\r\nTo: alice@example.test\r\n"
                b"Subject: over IMAP\r\nMessage-ID: <imap1@example.net>\r\n\r\nHello\r\n.dot\r\n")
        self.deliver("alice@example.test", body)
        c = self.client("alice@example.test")
        typ, data = c.select("INBOX")
        self.assertEqual(typ, "OK")
        n = int(data[0])
        typ, data = c.fetch(str(n), "(BODY.PEEK[] FLAGS ENVELOPE)")
        self.assertEqual(typ, "OK")
        stored = data[0][1]
        self.assertTrue(stored.startswith(b"Received: from "), stored[:100])
        self.assertTrue(stored.endswith(b"\r\n" + body))
        self.assertNotIn(b"\\Seen", data[1])
        self.assertIn(b'"over IMAP"', data[1])
        typ, data = c.fetch(str(n), "(BODY[TEXT])")
        self.assertEqual(data[0][1], b"Hello\r\n.dot\r\n")
        typ, data = c.fetch(str(n), "(FLAGS)")
        self.assertIn(b"\\Seen", data[0])
        c.logout()

    def test_starttls_and_logindisabled(self):
        c = imaplib.IMAP4("127.0.0.1", self.imap, timeout=10)
        self.assertIn("LOGINDISABLED", c.capabilities)
        with self.assertRaises(imaplib.IMAP4.error):
            c.login("alice@example.test", "pw")
        c.starttls(ssl_context=tls_client())
        self.assertNotIn("LOGINDISABLED", c.capabilities)
        typ, _ = c.login("alice@example.test", "pw")
        self.assertEqual(typ, "OK")
        c.logout()

    def test_starttls_injection_gets_no_reply(self):
        s = socket.create_connection(("127.0.0.1", self.imap), timeout=10)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"a STARTTLS\r\nb NOOP\r\n")
        self.assertTrue(f.readline().startswith(b"a OK"))
        t = tls_client().wrap_socket(s, server_hostname="localhost")
        t.sendall(b"c NOOP\r\n")
        self.assertTrue(t.recv(1000).startswith(b"c OK"), "the injected b NOOP got no reply")
        t.close()

    def test_mailbox_commands_and_uidplus(self):
        c = self.client("bob@example.test")
        self.assertEqual(c.create("Archive/2026")[0], "OK")
        typ, data = c.list('""', "*")
        names = [l.decode() for l in data]
        self.assertTrue(any(l.endswith('"Archive/2026"') for l in names), names)
        typ, data = c.append("Archive/2026", "(\\Flagged)", None, b"Subject: appended\r\n\r\nx\r\n")
        self.assertEqual(typ, "OK")
        self.assertRegex(data[0].decode(), r"\[APPENDUID \d+ 1\]")
        c.select("Archive/2026")
        typ, data = c.uid("COPY", "1", "INBOX")
        self.assertEqual(typ, "OK")
        typ, data = c.uid("MOVE", "1", "Trash")
        self.assertEqual(typ, "OK")
        typ, data = c.status("Trash", "(MESSAGES UNSEEN)")
        self.assertIn(b"MESSAGES 1", data[0])
        c.select("INBOX")
        typ, data = c.search(None, "SUBJECT", "appended")
        self.assertEqual(data[0], b"1")
        c.store("1", "+FLAGS", "\\Deleted")
        typ, data = c.expunge()
        self.assertEqual(data, [b"1"])
        self.assertEqual(c.rename("Archive", "Old")[0], "OK")
        typ, data = c.list('""', "Old/*")
        self.assertIn(b'"Old/2026"', data[0])
        self.assertEqual(c.delete("Old/2026")[0], "OK")
        c.logout()

    def test_two_sessions_see_each_others_changes(self):
        self.deliver("carol@example.test", b"Subject: shared\r\n\r\nx\r\n")
        a = self.client("carol@example.test")
        b = self.client("carol@example.test")
        a.select("INBOX")
        b.select("INBOX")
        b.store("1", "+FLAGS", "\\Flagged")
        a.noop()
        untagged = a.untagged_responses.get("FETCH", [])
        self.assertTrue(any(b"\\Flagged" in u for u in untagged), untagged)
        self.deliver("carol@example.test", b"Subject: second\r\n\r\ny\r\n")
        # 250 means durable in the log; the view shows it a moment later.
        deadline = time.time() + 10
        while b"2" not in a.untagged_responses.get("EXISTS", []):
            self.assertLess(time.time(), deadline, "the delivery never reached the session")
            a.noop()
            time.sleep(0.05)
        a.logout()
        b.logout()

    def test_idle_is_woken_by_smtp_delivery(self):
        s = tls_client().wrap_socket(socket.create_connection(("127.0.0.1", self.imaps), timeout=10),
                                     server_hostname="localhost")
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"a LOGIN dave@example.test pw\r\nb SELECT INBOX\r\n")
        while not f.readline().startswith(b"b OK"):
            pass
        s.sendall(b"c IDLE\r\n")
        self.assertEqual(f.readline(), b"+ idling\r\n")
        t0 = time.time()
        self.deliver("dave@example.test", b"Subject: wake up\r\n\r\nnow\r\n")
        line = f.readline()
        self.assertRegex(line.decode(), r"^\* \d+ EXISTS")
        self.assertLess(time.time() - t0, 5)
        s.sendall(b"DONE\r\n")
        while True:
            line = f.readline()
            if line.startswith(b"c "):
                break
        self.assertTrue(line.startswith(b"c OK"), line)
        s.close()

    def test_curl_fetches_over_imaps(self):
        self.deliver("alice@example.test", b"Subject: for curl\r\n\r\ncurl body\r\n")
        c = self.client("alice@example.test")
        _, data = c.select("INBOX")
        uid = c.uid("SEARCH", None, "SUBJECT", "curl")[1][0].split()[-1].decode()
        c.logout()
        out = subprocess.run(["curl", "-sSk", "--max-time", "10",
                              "imaps://127.0.0.1:%d/INBOX;UID=%s" % (self.imaps, uid),
                              "-u", "alice@example.test:pw"], capture_output=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.endswith(b"\r\ncurl body\r\n"), out.stdout)

    def test_failed_logins_are_audited(self):
        c = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=tls_client(), timeout=10)
        with self.assertRaises(imaplib.IMAP4.error):
            c.login("alice@example.test", "wrong")
        c.logout()
        r = ctl(self.config, "log", "dump")
        self.assertIn(b"AuthFailed", r.stdout)
        self.assertRegex(r.stdout.decode(), r"AuthFailed .* by imap from 127\.0\.0\.1")

    def test_every_other_command(self):
        """The commands not used above, as imaplib sends them."""
        who = "frank@example.test"
        r = ctl(self.config, "account", "add", who, "--password", "pw")
        self.assertEqual(r.returncode, 0, r.stderr)
        for i in range(3):
            self.deliver(who, b"Subject: cmd %d\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                              b"aGVsbG8gd29ybGQ=\r\n" % i)
        c = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=tls_client(), timeout=10)
        # AUTHENTICATE PLAIN (SASL-IR when the server offers it)
        typ, _ = c.authenticate("PLAIN", lambda _: b"\0" + who.encode() + b"\0pw")
        self.assertEqual(typ, "OK")
        self.assertEqual(c.noop()[0], "OK")
        typ, data = c.capability()
        for cap in (b"IMAP4rev2", b"CONDSTORE", b"QRESYNC", b"MOVE", b"UIDPLUS", b"ESEARCH"):
            self.assertIn(cap, data[0])
        typ, data = c.xatom("ID", '("name" "e2e")')
        self.assertEqual(typ, "OK")
        self.assertIn(b"A3Mailer", c.untagged_responses.pop("ID")[0])
        self.assertEqual(c.namespace()[1][0], b'(("" "/")) NIL NIL')
        typ, data = c.enable("CONDSTORE")
        self.assertEqual(typ, "OK")
        self.assertEqual(c.subscribe("Trash")[0], "OK")
        typ, data = c.lsub('""', "*")
        self.assertTrue(any(b'"Trash"' in l for l in data), data)
        self.assertEqual(c.unsubscribe("Trash")[0], "OK")
        typ, data = c.select("INBOX", readonly=True)  # EXAMINE
        self.assertEqual(typ, "OK")
        self.assertEqual(c.store("1", "+FLAGS", "\\Seen")[0], "NO")
        self.assertEqual(c.unselect()[0], "OK")
        c.select("INBOX")
        self.assertEqual(c.check()[0], "OK")
        typ, data = c.fetch("1", "(BINARY[1] BINARY.SIZE[1] MODSEQ)")
        self.assertEqual(data[0][1], b"hello world")
        self.assertRegex(data[1].decode(), r"BINARY.SIZE\[1\] 11 MODSEQ \(\d+\)")
        modseq = int(re.search(rb"MODSEQ \((\d+)\)", data[1]).group(1))
        typ, data = c.uid("SEARCH", "RETURN", "(COUNT MIN)", "ALL")
        self.assertRegex(c.untagged_responses.pop("ESEARCH")[0].decode(), r"UID MIN \d+ COUNT 3")
        typ, data = c.store("1", "(UNCHANGEDSINCE %d) +FLAGS" % modseq, "(\\Flagged)")
        self.assertEqual(typ, "OK")
        # The message changed after `modseq`: the second conditional STORE
        # must refuse it (RFC 7162 3.1.3), said in the tagged response.
        tag = c._command("STORE", "1", "(UNCHANGEDSINCE %d) -FLAGS" % modseq, "(\\Flagged)")
        typ, tagged = c._command_complete("STORE", tag)
        self.assertEqual(typ, "OK")
        self.assertTrue(tagged[0].startswith(b"[MODIFIED 1]"), tagged)
        c.store("1:2", "+FLAGS", "\\Deleted")
        typ, data = c.uid("EXPUNGE", "1")
        self.assertEqual(typ, "OK")
        typ, data = c.status("INBOX", "(MESSAGES DELETED HIGHESTMODSEQ)")
        self.assertRegex(data[0].decode(), r"MESSAGES 2 DELETED 1 HIGHESTMODSEQ \d+")
        self.assertEqual(c.close()[0], "OK")  # expunges the other \Deleted one
        typ, data = c.status("INBOX", "(MESSAGES)")
        self.assertIn(b"MESSAGES 1", data[0])
        c.logout()

    def test_curl_starttls(self):
        out = subprocess.run(["curl", "-sSk", "--ssl-reqd", "--max-time", "10",
                              "imap://127.0.0.1:%d/" % self.imap, "-u", "alice@example.test:pw"],
                             capture_output=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b'"INBOX"', out.stdout)

    def test_mbsync_syncs_flags_and_moves(self):
        """A real client (isync's mbsync) mirrors the account into a Maildir,
        then pushes a local flag change and a move back to the server."""
        if not shutil.which("mbsync"):
            self.fail("mbsync is not installed (tools/packages.txt: isync)")
        who = "eve@example.test"
        r = ctl(self.config, "account", "add", who, "--password", "pw")
        self.assertEqual(r.returncode, 0, r.stderr)
        for i in range(3):
            self.deliver(who, b"Subject: mbsync %d\r\n\r\nbody %d\r\n" % (i, i))
        home = os.path.join(self.tmp.name, "mbsync")
        maildir = os.path.join(home, "mail")
        os.makedirs(maildir)
        cfg = os.path.join(home, "mbsyncrc")
        with open(cfg, "w") as f:
            f.write("""IMAPAccount a3
Host 127.0.0.1
Port %d
User %s
Pass pw
SSLType IMAPS
CertificateFile %s/cert.pem

IMAPStore remote
Account a3

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""" % (self.imaps, who, self.tmp.name, maildir, maildir))

        def sync():
            out = subprocess.run(["mbsync", "-c", cfg, "-a"], capture_output=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

        sync()
        inbox = os.path.join(maildir, "INBOX")
        files = {}
        for sub in ("cur", "new"):
            for name in os.listdir(os.path.join(inbox, sub)):
                with open(os.path.join(inbox, sub, name), "rb") as fh:
                    files[fh.read().split(b"Subject: ")[1].split(b"\n")[0].strip()] = (sub, name)
        self.assertEqual(sorted(files), [b"mbsync 0", b"mbsync 1", b"mbsync 2"])
        # Flag message 0 (flagged + seen), move message 1 to a new folder.
        sub, name = files[b"mbsync 0"]
        base = name.split(":2,")[0]
        os.rename(os.path.join(inbox, sub, name), os.path.join(inbox, "cur", base + ":2,FS"))
        archive = os.path.join(maildir, "Archive")
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(archive, d))
        sub, name = files[b"mbsync 1"]
        fresh = re.sub(r",U=\d+", "", name.split(":2,")[0])
        os.rename(os.path.join(inbox, sub, name), os.path.join(archive, "new", fresh))
        sync()
        c = self.client(who)
        c.select("INBOX")
        typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        got = {}
        for item in data:
            if isinstance(item, tuple):
                got[item[1].strip().decode()] = item[0].decode()
        self.assertEqual(sorted(got), ["Subject: mbsync 0", "Subject: mbsync 2"], data)
        self.assertIn("\\Flagged", got["Subject: mbsync 0"])
        self.assertIn("\\Seen", got["Subject: mbsync 0"])
        self.assertNotIn("\\Flagged", got["Subject: mbsync 2"])
        typ, data = c.select("Archive")
        self.assertEqual(typ, "OK")
        typ, data = c.fetch("1", "(BODY.PEEK[])")
        self.assertIn(b"Subject: mbsync 1\r\n", data[0][1])
        self.assertTrue(data[0][1].endswith(b"\r\n\r\nbody 1\r\n"), data)
        c.logout()


if __name__ == "__main__":
    unittest.main(verbosity=2)
