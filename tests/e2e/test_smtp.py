#!/usr/bin/env python3
"""End-to-end SMTP: the real daemon, Python's smtplib, swaks and raw sockets
on loopback. Delivered messages are read back byte for byte with a3ctl."""
import os
import shutil
import socket
import ssl
import smtplib
import subprocess
import tempfile
import time
import unittest

from mailtest import ctl, deliver, free_port, make_cert, tls_client
from test_daemon import A3CTL, Daemon, write_config





class SmtpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="a3-e2e-smtp-")
        d = cls.tmp.name
        make_cert(d)
        cls.mx, cls.smtps = free_port(), free_port()
        cls.config = write_config(d, """
[[server.listener]]
protocol = "smtp"
bind = "127.0.0.1:%d"
[[server.listener]]
protocol = "submissions"
bind = "127.0.0.1:%d"
[tls]
certificate = "cert.pem"
private_key = "key.pem"
[smtp]
max_message_size = 100000
# SPF, DKIM and DMARC have their own test (test_authentication.py).
check_spf = false
check_dkim = false
check_dmarc = false
[outbound]
resolvers = ["127.0.0.1@9"]  # DNS never leaves loopback: queued mail waits
""" % (cls.mx, cls.smtps))
        for who, extra in (("alice", ["--alias", "al@example.test"]), ("bob", [])):
            r = ctl(cls.config, "account", "add", who + "@example.test", "--password", "pw", *extra)
            assert r.returncode == 0, r.stderr
        cls.daemon = Daemon(cls.config)
        cls.daemon.wait_for("smtp: listening on 127.0.0.1:%d" % cls.mx)

    @classmethod
    def tearDownClass(cls):
        assert cls.daemon.stop() == 0, cls.daemon.output()
        cls.tmp.cleanup()

    def inbox_count(self, who):
        out = ctl(self.config, "account", "show", who + "@example.test").stdout.decode()
        line = [l for l in out.splitlines() if l.strip().startswith("INBOX")][0]
        return int(line.split("messages=")[1].split()[0])

    def message(self, who, uid):
        r = ctl(self.config, "account", "message", who + "@example.test", str(uid))
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def raw(self, data, tls=False):
        """Sends `data` after EHLO on a raw connection; returns all replies."""
        s = socket.create_connection(("127.0.0.1", self.mx), timeout=10)
        s.recv(1000)
        s.sendall(b"EHLO raw.example\r\n")
        time.sleep(0.2)
        s.recv(4000)
        s.sendall(data)
        time.sleep(0.5)
        out = b""
        s.settimeout(0.5)
        try:
            while True:
                chunk = s.recv(4000)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
        s.close()
        return out

    def test_plain_delivery_is_byte_for_byte_with_a_received_header(self):
        before = self.inbox_count("bob")
        body = (b"From: Carol <carol@example.net>\r\nTo: bob@example.test\r\n"
                b"Subject: plain\r\nMessage-ID: <p1@example.net>\r\n\r\n.leading dot\r\nend\r\n")
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
            s.sendmail("carol@example.net", ["bob@example.test"], body)
        self.assertEqual(self.inbox_count("bob"), before + 1)
        stored = self.message("bob", before + 1)
        self.assertTrue(stored.startswith(b"Received: from "), stored[:200])
        self.assertIn(b"by localhost (A3Mailer) with ESMTP", stored)
        self.assertTrue(stored.endswith(b"\r\n" + body), stored)

    def test_starttls_and_smtps_and_aliases(self):
        before = self.inbox_count("alice")
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
            s.starttls(context=tls_client())
            s.sendmail("carol@example.net", ["al@example.test", "alice@example.test"],
                       b"Subject: tls\r\n\r\nover TLS\r\n")
        self.assertEqual(self.inbox_count("alice"), before + 1, "two addresses, one account, one copy")
        stored = self.message("alice", before + 1)
        self.assertIn(b"with ESMTPS", stored)
        self.assertIn(b"(using TLSv1.3", stored)
        with smtplib.SMTP_SSL("127.0.0.1", self.smtps, timeout=10, context=tls_client()) as s:
            with self.assertRaises(smtplib.SMTPSenderRefused) as e:
                s.sendmail("alice@example.test", ["bob@example.test"], b"x")
            self.assertEqual(e.exception.smtp_code, 530)

    def test_submission_with_auth(self):
        before = self.inbox_count("bob")
        with smtplib.SMTP_SSL("127.0.0.1", self.smtps, timeout=10, context=tls_client()) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.login("alice@example.test", "wr0ng-Pa55")
            s.login("alice@example.test", "pw")
            with self.assertRaises(smtplib.SMTPSenderRefused) as e:
                s.sendmail("bob@example.test", ["bob@example.test"], b"x")  # not hers
            self.assertEqual(e.exception.smtp_code, 553)
            # Other domains are queued for delivery (test_outbound.py
            # delivers them); the MX port never relays (above).
            queued = ctl(self.config, "queue", "list", "--json").stdout.decode().count('"id"')
            s.sendmail("al@example.test", ["someone@elsewhere.example"], b"Subject: out\r\n\r\nx\r\n")
            listed = ctl(self.config, "queue", "list", "--json").stdout.decode()
            self.assertEqual(listed.count('"id"'), queued + 1)
            self.assertIn("someone@elsewhere.example", listed)
            s.sendmail("al@example.test", ["bob@example.test"], b"Subject: sub\r\n\r\nhi\r\n")
        self.assertEqual(self.inbox_count("bob"), before + 1)
        stored = self.message("bob", before + 1)
        self.assertIn(b"with ESMTPSA", stored)
        self.assertIn(b"(authenticated as alice@example.test)", stored)
        dump = ctl(self.config, "log", "dump", "--json").stdout.decode()
        self.assertIn('"kind":"AuthFailed"', dump)
        self.assertIn('"kind":"AuthSucceeded"', dump)
        self.assertNotIn("wr0ng-Pa55", dump, "passwords never reach the log")

    def test_notify_success_reports_delivery(self):
        """RFC 3461 6.2: a local recipient's NOTIFY=SUCCESS gets the sender a
        "delivered" report: in its INBOX when it is ours, through the queue
        (from <>) when it is not."""
        before = self.inbox_count("alice")
        with smtplib.SMTP_SSL("127.0.0.1", self.smtps, timeout=10, context=tls_client()) as s:
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: tell me\r\n\r\nx\r\n",
                       mail_options=["ENVID=T1"],
                       rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;bob@example.test"])
        deadline = time.time() + 10
        while time.time() < deadline and self.inbox_count("alice") == before:
            time.sleep(0.1)
        self.assertEqual(self.inbox_count("alice"), before + 1)
        report = self.message("alice", before + 1).decode()
        self.assertIn("Content-Type: multipart/report; report-type=delivery-status", report)
        self.assertIn("Action: delivered", report)
        self.assertIn("Status: 2.0.0", report)
        self.assertIn("Final-Recipient: rfc822; bob@example.test", report)
        self.assertIn("Original-Envelope-Id: T1", report)
        self.assertIn("Subject: tell me", report, "the original's header")
        # From another domain's sender on the MX, without SPF's word that
        # it is who it says (the checks are off here): no report, which
        # would be backscatter to a forged sender. (With SPF passing, it is
        # queued back from <>: test_authentication.py.)
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
            s.sendmail("carol@example.net", ["bob@example.test"], b"Subject: hi\r\n\r\nx\r\n",
                       rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
        queued = ctl(self.config, "queue", "list", "--json").stdout.decode()
        self.assertNotIn("carol@example.net", queued)
        # Without NOTIFY=SUCCESS, no report.
        count = self.inbox_count("alice")
        with smtplib.SMTP_SSL("127.0.0.1", self.smtps, timeout=10, context=tls_client()) as s:
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: quiet\r\n\r\nx\r\n",
                       rcpt_options=["NOTIFY=FAILURE"])
        time.sleep(0.5)
        self.assertEqual(self.inbox_count("alice"), count)

    def test_smtputf8(self):
        before = self.inbox_count("bob")
        body = "From: jürgen@example.net\r\nSubject: Grüße\r\n\r\nHallo\r\n".encode()
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
            s.ehlo()
            self.assertTrue(s.has_extn("smtputf8"))
            s.sendmail("jürgen@example.net", ["bob@example.test"], body, mail_options=["SMTPUTF8"])
        self.assertEqual(self.inbox_count("bob"), before + 1)
        stored = self.message("bob", before + 1)
        self.assertIn(b"with UTF8SMTP", stored)
        self.assertTrue(stored.endswith(body))
        # Without SMTPUTF8, a non-ASCII address is refused (RFC 6531 3.4).
        out = self.raw("MAIL FROM:<jürgen@example.net>\r\n".encode())
        self.assertIn(b"553 5.6.7", out)

    def test_swaks_delivers(self):
        if not shutil.which("swaks"):
            self.fail("swaks is not installed (tools/packages.txt installs it)")
        before = self.inbox_count("alice")
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.mx, "--to",
                            "alice@example.test", "--from", "swaks@example.net", "--header",
                            "Subject: swaks"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("250 2.0.0 Message accepted", r.stdout)
        self.assertEqual(self.inbox_count("alice"), before + 1)

    def test_no_relaying_and_unknown_users(self):
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
            s.ehlo()
            s.mail("spammer@example.net")
            self.assertEqual(s.rcpt("victim@elsewhere.example")[0], 550)
            self.assertEqual(s.rcpt("victim%elsewhere.example@example.test")[0], 550)
            self.assertEqual(s.docmd("RCPT TO:<@example.test:victim@elsewhere.example>")[0], 550)
            self.assertEqual(s.rcpt("nobody@example.test")[0], 550)
            self.assertEqual(s.docmd("DATA")[0], 554)

    def test_starttls_injection_gets_no_reply(self):
        s = socket.create_connection(("127.0.0.1", self.mx), timeout=10)
        s.recv(1000)
        s.sendall(b"EHLO x\r\n")
        time.sleep(0.2)
        s.recv(4000)
        s.sendall(b"STARTTLS\r\nRSET\r\n")  # one segment
        self.assertEqual(s.recv(1000), b"220 2.0.0 Ready to start TLS\r\n")
        t = tls_client().wrap_socket(s)
        t.sendall(b"NOOP\r\n")
        self.assertEqual(t.recv(1000), b"250 2.0.0 OK\r\n", "the injected RSET was never answered")
        t.close()

    def test_smuggling_sequences_deliver_nothing(self):
        for trick in (b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r"):
            before = self.inbox_count("bob")
            out = self.raw(b"MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
                           b"Subject: one\r\n\r\nx" + trick +
                           b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<bob@example.test>\r\n"
                           b"DATA\r\nforged\r\n.\r\nQUIT\r\n")
            self.assertIn(b"550 5.6.0 Message contains a bare CR or LF", out, trick)
            self.assertNotIn(b"250 2.0.0 Message accepted", out, trick)
            self.assertEqual(self.inbox_count("bob"), before, trick)

    def test_size_limit_and_chunking(self):
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
            s.ehlo()
            self.assertEqual(s.docmd("MAIL FROM:<a@example.net> SIZE=200000")[0], 552)
        before = self.inbox_count("bob")
        out = self.raw(b"MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.test>\r\n"
                       b"BDAT 12\r\nSubject: b\r\nBDAT 6 LAST\r\n\r\nhi\r\n")
        self.assertIn(b"250 2.0.0 12 octets received", out)
        self.assertIn(b"250 2.0.0 Message accepted", out)
        self.assertEqual(self.inbox_count("bob"), before + 1)
        self.assertTrue(self.message("bob", before + 1).endswith(b"\r\nSubject: b\r\n\r\nhi\r\n"))


def big_message(size, tag):
    """A message of about `size` bytes with lines of varying length."""
    head = ("From: Carol <carol@example.net>\r\nSubject: big %s\r\n"
            "Message-ID: <%s@example.net>\r\n\r\n" % (tag, tag)).encode()
    lines, n, total = [], 0, len(head)
    while total < size:
        line = (b"%08d " % n) + b"x" * (n % 900) + b"\r\n"
        lines.append(line)
        total += len(line)
        n += 1
    return head + b"".join(lines)


def log_events(config):
    import json
    r = ctl(config, "log", "dump", "--json")
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.decode().splitlines():
        if line.strip():
            record = json.loads(line)
            record["event"]["partition"] = record["partition"]
            out.append(record["event"])
    return out


class SmtpLargeMessageTest(unittest.TestCase):
    """A large message travels to the log in chunks while it comes in (no
    session holds it whole, nor once per recipient) and is stored whole."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="a3-e2e-smtp-large-")
        cls.mx = free_port()
        cls.config = write_config(cls.tmp.name, """
[[server.listener]]
protocol = "smtp"
bind = "127.0.0.1:%d"
[eventlog]
partitions = 4
[smtp]
max_message_size = 20_000_000
check_spf = false
check_dkim = false
check_dmarc = false
""" % cls.mx)
        # Several accounts: with 4 partitions some land in different ones.
        cls.users = ["u%d@example.test" % i for i in range(6)]
        for who in cls.users:
            r = ctl(cls.config, "account", "add", who, "--password", "pw")
            assert r.returncode == 0, r.stderr
        cls.daemon = Daemon(cls.config)
        cls.daemon.wait_for("smtp: listening on 127.0.0.1:%d" % cls.mx)

    @classmethod
    def tearDownClass(cls):
        assert cls.daemon.stop() == 0, cls.daemon.output()
        cls.tmp.cleanup()

    def stored(self, who, uid):
        r = ctl(self.config, "account", "message", who, str(uid))
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def count(self, who):
        out = ctl(self.config, "account", "show", who).stdout.decode()
        line = [l for l in out.splitlines() if l.strip().startswith("INBOX")][0]
        return int(line.split("messages=")[1].split()[0])

    def test_a_refused_streamed_message_never_leaks_into_the_next(self):
        who = self.users[1]
        count = self.count(who)
        # 2 MB with a bare LF (refused at its end), and in the same segment
        # the next transaction, whose message is tiny.
        bad = b"Subject: bad\r\n\r\n" + b"x" * 1000 + b"\n" + (b"y" * 998 + b"\r\n") * 2000
        s = socket.create_connection(("127.0.0.1", self.mx), timeout=30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO raw.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                  % who.encode() + bad + b".\r\nMAIL FROM:<b@example.net>\r\nRCPT TO:<%s>\r\n"
                  b"DATA\r\nSubject: small\r\n\r\ntiny\r\n.\r\nQUIT\r\n" % who.encode())
        out = b""
        while True:
            data = s.recv(65536)
            if not data:
                break
            out += data
        s.close()
        self.assertIn(b"550 5.6.0", out)
        self.assertIn(b"250 2.0.0 Message accepted", out)
        self.assertEqual(self.count(who), count + 1)
        stored = self.stored(who, count + 1)
        self.assertTrue(stored.endswith(b"\r\nSubject: small\r\n\r\ntiny\r\n"), stored[:300])
        self.assertLess(len(stored), 1000)

    def test_large_message_to_several_accounts_is_stored_whole(self):
        body = big_message(6_000_000, "large1")
        before = {who: self.count(who) for who in self.users}
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=60) as s:
            s.sendmail("carol@example.net", self.users, body)
        # 250 means durable; the view shows it a moment later.
        deadline = time.time() + 20
        while time.time() < deadline and any(self.count(w) <= before[w] for w in self.users):
            time.sleep(0.1)
        for who in self.users:
            self.assertEqual(self.count(who), before[who] + 1)
            stored = self.stored(who, before[who] + 1)
            self.assertTrue(stored.startswith(b"Received: from "), stored[:100])
            self.assertIn(b"for <%s>" % who.encode(), stored[:400])
            self.assertTrue(stored.endswith(b"\r\n" + body), (who, len(stored)))
        events = log_events(self.config)
        chunks = [e for e in events if e["kind"] == "BodyChunk"]
        appended = [e for e in events if e["kind"] == "MessageAppended"
                    and e["body"].get("staged", {}).get("message_id") == "<large1@example.net>"]
        self.assertEqual(len(appended), len(self.users))
        blob = appended[0]["body"]["staged"]["blob_id"]
        chunks = [c for c in chunks if c["body"]["blob_id"] == blob]
        partitions = {e["partition"] for e in appended}
        self.assertGreater(len(partitions), 1, "accounts spread over partitions")
        # Each partition got the chunks once, none over 512 KiB, and every
        # MessageAppended holds only its Received: header inline.
        for p in partitions:
            mine = [c for c in chunks if c["partition"] == p]
            self.assertEqual(sum(c["body"]["size"] for c in mine), len(body))
            self.assertTrue(all(c["body"]["size"] <= 512 * 1024 for c in mine))
        for a in appended:
            self.assertLess(a["body"]["size"], 1000)
            self.assertEqual(a["body"]["staged"]["size"], len(body))
            self.assertEqual(a["body"]["staged"]["message_id"], "<large1@example.net>")

    def test_large_bdat_and_oversized_data(self):
        who = self.users[0]
        count = self.count(who)
        body = big_message(3_000_000, "bdat1")
        s = socket.create_connection(("127.0.0.1", self.mx), timeout=30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO raw.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<%s>\r\n" % who.encode())
        while not f.readline().startswith(b"250 2.1.5"):
            pass
        replies = []
        third = len(body) // 3
        for i, piece in enumerate((body[:third], body[third:2 * third], body[2 * third:])):
            last = b" LAST" if i == 2 else b""
            s.sendall(b"BDAT %d%s\r\n" % (len(piece), last) + piece)
            if not last:
                # Wait for the chunk's reply: the server's reads then end
                # between chunks, where a streamed message must go on.
                while b"octets received" not in f.readline():
                    pass
        s.sendall(b"QUIT\r\n")
        out = f.read()
        s.close()
        self.assertIn(b"250 2.0.0 Message accepted", out, out)
        stored = self.stored(who, count + 1)
        self.assertTrue(stored.endswith(b"\r\n" + body), (len(stored), len(body)))
        # Over max_message_size while streaming: 552, nothing delivered.
        # (no SIZE parameter: the limit is enforced on the bytes themselves)
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=60) as c:
            c.ehlo()
            self.assertEqual(c.mail("carol@example.net")[0], 250)
            self.assertEqual(c.rcpt(who)[0], 250)
            code, _ = c.data(big_message(21_000_000, "huge"))
            self.assertEqual(code, 552)
        self.assertEqual(self.count(who), count + 1)


class SmtpOnKafkaTest(unittest.TestCase):
    """With the log unavailable (every mock Kafka broker down), clients get
    451, never 250; once the brokers are back, mail flows again."""

    def test_log_down_means_451(self):
        from test_daemon import MOCK_KAFKA
        import signal
        tmp = tempfile.TemporaryDirectory(prefix="a3-e2e-smtp-kafka-")
        mock = subprocess.Popen([MOCK_KAFKA, "--brokers", "3"], stdout=subprocess.PIPE, text=True)
        try:
            brokers = mock.stdout.readline().split()[1]
            port = free_port()
            config = write_config(tmp.name, """
[[server.listener]]
protocol = "smtp"
bind = "127.0.0.1:%d"
[eventlog]
backend = "kafka"
[eventlog.kafka]
brokers = "%s"
delivery_timeout_ms = 3000
[smtp]
check_spf = false
check_dkim = false
check_dmarc = false
""" % (port, brokers))
            d = Daemon(config)
            try:
                d.wait_for("smtp: listening")
                r = subprocess.run([A3CTL, "--config", config, "account", "add", "alice@example.test",
                                    "--password", "pw"], capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                    s.sendmail("a@example.net", ["alice@example.test"], b"Subject: 1\r\n\r\nx\r\n")
                mock.send_signal(signal.SIGUSR1)
                time.sleep(0.5)
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                    with self.assertRaises(smtplib.SMTPDataError) as e:
                        s.sendmail("a@example.net", ["alice@example.test"], b"Subject: 2\r\n\r\nx\r\n")
                    self.assertEqual(e.exception.smtp_code, 451)
                mock.send_signal(signal.SIGUSR2)
                deadline = time.time() + 30
                while True:
                    try:
                        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                            s.sendmail("a@example.net", ["alice@example.test"], b"Subject: 3\r\n\r\nx\r\n")
                        break
                    except smtplib.SMTPDataError:
                        self.assertLess(time.time(), deadline, "mail never flowed again")
                        time.sleep(0.5)
                # Over Kafka's 1 MB record limit: goes as chunks, stored whole.
                body = big_message(3_000_000, "kafka1")
                with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                    s.sendmail("a@example.net", ["alice@example.test"], body)
                # (a message answered 451 may still have landed: look at every UID)
                deadline = time.time() + 30
                while not any(ctl(config, "account", "message", "alice@example.test", str(uid))
                              .stdout.endswith(b"\r\n" + body) for uid in range(1, 10)):
                    self.assertLess(time.time(), deadline, "the large message never showed")
                    time.sleep(0.5)
            finally:
                self.assertEqual(d.stop(), 0, d.output())
        finally:
            mock.terminate()
            mock.wait(30)
            mock.stdout.close()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
