"""Outbound delivery end to end: submission with AUTH queues mail for other
domains; the worker finds their MX hosts through a real DNS server
(Debian's unbound, local zones, on loopback) and delivers to receiving
servers (aiosmtpd) on other loopback addresses; 4xx are retried, 5xx and
DNS failures bounce with an RFC 3464 report into the sender's INBOX; the
queue survives a SIGKILL; the MX port never relays."""
import base64
import hashlib
import email
import getpass
import glob
import os
import signal
import smtplib
import subprocess
import tempfile
import time
import unittest

from mailtest import MailServer, ctl, free_port, inbox_count, make_cert, start_unbound, tls_client

HERE = os.path.dirname(os.path.abspath(__file__))


def start_dns(directory, port, mx_port, signed_zone=None):
    """unbound answering for the test domains (mailtest.start_unbound)."""
    zones = {
        "example.net": ["example.net. MX 10 mx1.example.net.", "mx1.example.net. A 127.0.0.2"],
        # Two MX hosts: the preferred one refuses connections.
        "backup.example": ["backup.example. MX 5 dead.backup.example.",
                           "backup.example. MX 20 live.backup.example.",
                           "dead.backup.example. A 127.0.0.9",
                           "live.backup.example. A 127.0.0.2"],
        "reject.example": ["reject.example. MX 10 mx.reject.example.",
                           "mx.reject.example. A 127.0.0.3"],
        "nullmx.example": ['nullmx.example. MX 0 .'],
        # No MX: the domain's own address is its mail host.
        "implicit.example": ["implicit.example. A 127.0.0.2"],
        "down.example": ["down.example. MX 10 mx.down.example.", "mx.down.example. A 127.0.0.5"],
        # Postfix's smtp-sink, which offers DSN (RFC 3461).
        "sink.example": ["sink.example. MX 10 mx.sink.example.", "mx.sink.example. A 127.0.0.31"],
    }
    return start_unbound(directory, port, zones, signed_zone)


def start_mta(address, port, directory, *options):
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "remote_mta.py"), address,
                             str(port), directory, *options], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"listening", proc.stderr.read()
    return proc


def make_dkim_key(directory, name, algorithm):
    """A private key file and the TXT record that publishes its public key."""
    key = os.path.join(directory, name + ".pem")
    if algorithm == "rsa":
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", key], check=True, capture_output=True)
        der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        return key, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", key], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    # RFC 8463: the raw 32-byte public key (the end of the DER).
    return key, "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode()


def dkim_verdict(message_bytes, directory, selector, domain, record):
    path = os.path.join(directory, "verify.eml")
    with open(path, "wb") as f:
        f.write(message_bytes)
    return subprocess.run(["/usr/bin/python3", os.path.join(HERE, "dkim_verify.py"), path, selector,
                           domain, record], capture_output=True, timeout=30).stdout.decode().strip()


def arrived(directory, rcpt, timeout=30):
    """The message that `directory`'s server accepted for `rcpt`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in sorted(glob.glob(os.path.join(directory, "*.eml"))):
            with open(path, "rb") as f:
                data = f.read()
            if b"X-Test-Rcpt-To: <%s>" % rcpt.encode() in data:
                return data
        time.sleep(0.1)
    raise AssertionError("nothing arrived for %s" % rcpt)


class OutboundTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.TemporaryDirectory(prefix="a3-outbound-")
        cls.dns_port, cls.mx_port = free_port(), free_port()
        cls.dns = start_dns(cls.work.name, cls.dns_port, cls.mx_port)
        cls.mx1_dir = os.path.join(cls.work.name, "mx1")
        cls.reject_dir = os.path.join(cls.work.name, "reject")
        cls.down_dir = os.path.join(cls.work.name, "down")
        cls.mtas = [start_mta("127.0.0.2", cls.mx_port, cls.mx1_dir),
                    start_mta("127.0.0.3", cls.mx_port, cls.reject_dir)]
        cls.mx, cls.submission = free_port(), free_port()
        cls.rsa_key, cls.rsa_record = make_dkim_key(cls.work.name, "rsa", "rsa")
        outbound = ('[outbound]\nresolvers = ["127.0.0.1@%d"]\nmx_port = %d\n'
                    'retry_initial_s = 1\nretry_max_s = 2\nconnect_timeout_s = 5\n'
                    'command_timeout_s = 3\ndata_timeout_s = 3\n'
                    # The test's MX hosts are loopback addresses.
                    'allow_private_destinations = true\n' % (cls.dns_port, cls.mx_port))
        outbound += ('[[outbound.dkim]]\ndomain = "example.test"\nselector = "s1"\n'
                     'private_key = "%s"\n' % cls.rsa_key)
        cls.server = MailServer("a3-outbound-d-", [("smtp", cls.mx), ("submission", cls.submission)],
                                ["alice"], "started:", outbound=outbound)
        cls.config = cls.server.config

    @classmethod
    def tearDownClass(cls):
        if cls.server.daemon.proc.poll() is not None:
            print(cls.server.daemon.output())
        cls.server.stop()
        for p in cls.mtas + [cls.dns]:
            p.terminate()
            p.wait(10)
        cls.work.cleanup()

    def submit(self, to, body=None, **kw):
        body = body or b"Subject: outbound test\r\nMessage-ID: <t@example.test>\r\n\r\nHello.\r\n"
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            return s.sendmail("alice@example.test", to, body, **kw)

    def events(self, kind):
        r = ctl(self.config, "log", "dump", "--json")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        out = r.stdout.decode()
        return [line for line in out.splitlines() if '"kind":"%s"' % kind in line]

    def wait_queue_empty(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = ctl(self.config, "queue", "list").stdout.decode()
            if out.strip().endswith("0 message(s) queued"):
                return
            time.sleep(0.2)
        raise AssertionError("the queue did not empty: " + out)

    def dsn_in_inbox(self, rcpt, timeout=30):
        """The report about `rcpt` in alice's INBOX."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            n = inbox_count(self.config, "alice@example.test")
            for uid in range(n, 0, -1):
                raw = ctl(self.config, "account", "message", "alice@example.test", str(uid)).stdout
                if b"Final-Recipient: rfc822; " + rcpt.encode() in raw:
                    return email.message_from_bytes(raw)
            time.sleep(0.2)
        self.fail("no report about %s arrived" % rcpt)

    def test_delivered_to_the_mx_host(self):
        self.submit(["bob@example.net"])
        data = arrived(self.mx1_dir, "bob@example.net")
        self.assertIn(b"X-Test-Mail-From: <alice@example.test>", data)
        self.assertIn(b"Subject: outbound test", data)
        self.assertIn(b"Received: from ", data)
        self.wait_queue_empty()
        delivered = self.events("Delivered")
        self.assertTrue(any("bob@example.net" in e and "250 2.0.0" in e for e in delivered))
        self.assertTrue(self.events("DeliveryAttempted"))

    def test_dkim_signature_verifies_independently(self):
        body = (b"From: Alice <alice@example.test>\r\nTo: bob@example.net\r\n"
                b"Subject: signed\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
                b"Message-ID: <dkim@example.test>\r\n\r\nSigned body.\r\n.leading dot\r\n")
        self.submit(["signed@example.net"], body)
        data = arrived(self.mx1_dir, "signed@example.net")
        self.assertIn(b"DKIM-Signature: ", data)
        self.assertIn(b"a=rsa-sha256", data)
        self.assertIn(b"c=relaxed/relaxed", data)
        self.assertEqual(dkim_verdict(data, self.work.name, "s1", "example.test", self.rsa_record),
                         "pass")
        # The same check fails on a changed body: the verifier is not a rubber stamp.
        tampered = data.replace(b"Signed body.", b"Signed b0dy.")
        self.assertNotEqual(dkim_verdict(tampered, self.work.name, "s1", "example.test",
                                         self.rsa_record), "pass")

    def test_next_mx_when_the_preferred_one_is_down_and_implicit_mx(self):
        self.submit(["carol@backup.example", "dave@implicit.example"])
        arrived(self.mx1_dir, "carol@backup.example")
        arrived(self.mx1_dir, "dave@implicit.example")
        self.wait_queue_empty()

    def test_greylisting_is_retried(self):
        self.submit(["defer-1@example.net"])
        arrived(self.mx1_dir, "defer-1@example.net", timeout=30)
        self.assertTrue(any("defer-1@example.net" in e and "451 4.7.1" in e
                            for e in self.events("Deferred")))

    def test_refused_recipient_bounces_with_a_dsn_to_the_sender(self):
        before = inbox_count(self.config, "alice@example.test")
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["reject-me@reject.example"],
                       b"Subject: will bounce\r\n\r\nbody\r\n", mail_options=["ENVID=QQ+2B1"],
                       rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;Reject-Me+2Bx@reject.example"])
        dsn = self.dsn_in_inbox("reject-me@reject.example")
        self.assertEqual(dsn.get_content_type(), "multipart/report")
        self.assertEqual(dsn.get_param("report-type"), "delivery-status")
        status = [p for p in dsn.walk() if p.get_content_type() == "message/delivery-status"]
        self.assertTrue(status)
        text = status[0].as_string()
        self.assertIn("Final-Recipient: rfc822; reject-me@reject.example", text)
        self.assertIn("Status: 5.1.1", text)
        self.assertIn("Action: failed", text)
        self.assertIn("Original-Recipient: rfc822;Reject-Me+x@reject.example", text)
        self.assertIn("Original-Envelope-Id: QQ+1", text)
        self.assertIn("Remote-MTA: dns; mx.reject.example", text)
        self.assertIn("550 5.1.1", text)
        original = [p for p in dsn.walk() if p.get_content_type() == "message/rfc822"]
        self.assertTrue(original, "RET=FULL by default: the message comes back")
        self.assertIn("will bounce", original[0].as_string())
        self.assertTrue(self.events("Bounced"))

    def test_dsn_parameters_go_to_a_server_that_offers_dsn(self):
        """RFC 3461: NOTIFY, ORCPT, ENVID and RET go on to a server that
        offers DSN (it reports from then on: no success report from us)."""
        sink_dir = os.path.join(self.work.name, "sink")
        os.makedirs(sink_dir)
        sink = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", getpass.getuser(), "-d",
                                 sink_dir + "/%M.", "127.0.0.31:%d" % self.mx_port, "10"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(sink.wait)
        self.addCleanup(sink.kill)
        time.sleep(0.3)
        before = inbox_count(self.config, "alice@example.test")
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["Carol@sink.example"], b"Subject: dsn\r\n\r\nx\r\n",
                       mail_options=["RET=HDRS", "ENVID=E+2B1"],
                       rcpt_options=["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;Carol+2Bx@sink.example"])
        deadline = time.time() + 30
        dumped = b""
        while time.time() < deadline and not dumped:
            for path in glob.glob(os.path.join(sink_dir, "*")):
                with open(path, "rb") as f:
                    dumped = f.read()
            time.sleep(0.1)
        self.assertIn(b"X-Mail-Args: <alice@example.test> RET=HDRS ENVID=E+2B1", dumped)
        self.assertIn(b"X-Rcpt-Args: <Carol@sink.example> NOTIFY=SUCCESS,DELAY "
                      b"ORCPT=rfc822;Carol+2Bx@sink.example", dumped)
        self.wait_queue_empty()
        self.assertEqual(inbox_count(self.config, "alice@example.test"), before,
                         "the server that took NOTIFY reports, not us")

    def test_success_is_reported_when_the_server_does_not_report(self):
        """RFC 3461 5.2.2: NOTIFY=SUCCESS, delivered to a server without DSN:
        a "relayed" report to the sender."""
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["happy@example.net"],
                       b"Subject: success\r\n\r\nbody\r\n", rcpt_options=["NOTIFY=SUCCESS"])
        arrived(self.mx1_dir, "happy@example.net")
        dsn = self.dsn_in_inbox("happy@example.net")
        self.assertEqual(dsn["Subject"], "Delivery Status Notification")
        text = dsn.as_string()
        self.assertIn("Action: relayed", text)
        self.assertIn("Status: 2.0.0", text)
        self.assertIn("Remote-MTA: dns; mx1.example.net", text)
        # Headers only in a report of success (RFC 3461 4.3).
        self.assertFalse([p for p in dsn.walk() if p.get_content_type() == "message/rfc822"])
        self.assertTrue([p for p in dsn.walk() if p.get_content_type() == "text/rfc822-headers"])

    def test_a_delay_is_reported_once(self):
        """RFC 3461 4.1, RFC 3464 "delayed": after outbound.delay_warning_s,
        the sender hears once that the message is still being retried."""
        submission = free_port()
        server = MailServer("a3-delay-d-", [("submission", submission)], ["alice"], "started:",
                            outbound='[outbound]\nresolvers = ["127.0.0.1@%d"]\nmx_port = %d\n'
                                     'allow_private_destinations = true\nretry_initial_s = 1\n'
                                     'retry_max_s = 1\ndelay_warning_s = 1\n'
                                     % (self.dns_port, self.mx_port))
        self.addCleanup(server.stop)
        with smtplib.SMTP("127.0.0.1", submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["defer-4-late@example.net"],
                       b"Subject: late\r\n\r\nbody\r\n")
        arrived(self.mx1_dir, "defer-4-late@example.net")
        reports = []
        for uid in range(1, inbox_count(server.config, "alice@example.test") + 1):
            raw = ctl(server.config, "account", "message", "alice@example.test", str(uid)).stdout
            if b"Final-Recipient: rfc822; defer-4-late@example.net" in raw:
                reports.append(email.message_from_bytes(raw))
        self.assertEqual(len(reports), 1, "one delay report, however many retries")
        self.assertEqual(reports[0]["Subject"], "Delayed Mail (still being retried)")
        text = reports[0].as_string()
        self.assertIn("Action: delayed", text)
        self.assertIn("Status: 4.7.1", text)
        self.assertIn("Will-Retry-Until: ", text)

    def test_dns_failures_bounce_with_their_reason(self):
        self.submit(["x@nosuch.example"])
        dsn = self.dsn_in_inbox("x@nosuch.example").as_string()
        self.assertIn("Status: 5.1.2", dsn)
        self.submit(["y@nullmx.example"])
        dsn = self.dsn_in_inbox("y@nullmx.example").as_string()
        self.assertIn("Status: 5.1.10", dsn)

    def test_notify_never_sends_no_bounce(self):
        before = inbox_count(self.config, "alice@example.test")
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["reject-quiet@reject.example"], b"Subject: q\r\n\r\nq\r\n",
                       rcpt_options=["NOTIFY=NEVER"])
        deadline = time.time() + 15
        while time.time() < deadline and not any("reject-quiet" in e for e in self.events("Bounced")):
            time.sleep(0.2)
        self.assertTrue(any("reject-quiet" in e for e in self.events("Bounced")))
        time.sleep(1)
        self.assertEqual(inbox_count(self.config, "alice@example.test"), before, "NOTIFY=NEVER")

    def test_bad_remote_replies_defer_and_keep_the_message(self):
        """A reply that is not SMTP, one too long, a connection dropped or a
        server stalled before the final reply: each is a deferral with its
        reason (the message stays queued: it may or may not have arrived),
        never a crash or a bounce."""
        cases = {"garbage-1@example.net": "malformed reply",
                 "huge-1@example.net": "reply too long",
                 "drop-1@example.net": "",
                 "stall-1@example.net": "timed out"}
        for rcpt in cases:
            self.submit([rcpt])
        deadline = time.time() + 30
        deferred = []
        while time.time() < deadline:
            deferred = self.events("Deferred")
            if all(any(r in e for e in deferred) for r in cases):
                break
            time.sleep(0.3)
        for rcpt, why in cases.items():
            mine = [e for e in deferred if rcpt in e]
            self.assertTrue(mine, rcpt)
            self.assertIn(why, mine[0])
        self.assertFalse([e for e in self.events("Bounced") if "-1@example.net" in e])
        listing = ctl(self.config, "queue", "list", "--json").stdout.decode()
        for rcpt in cases:
            self.assertIn(rcpt, listing)
        for line in listing.splitlines():
            if any(r in line for r in cases):
                qid = line.split('"id":"')[1].split('"')[0]
                self.assertEqual(ctl(self.config, "queue", "delete", qid).returncode, 0)
        self.assertEqual(self.server.daemon.proc.poll(), None, "the daemon is still running")

    def test_private_destinations_are_refused_by_default(self):
        """An MX host on a loopback or private address (a loop back to us, or
        a way into an internal network) is not used unless configured."""
        submission = free_port()
        server = MailServer("a3-private-d-", [("submission", submission)], ["alice"], "started:",
                            outbound='[outbound]\nresolvers = ["127.0.0.1@%d"]\nmx_port = %d\n'
                                     'retry_initial_s = 60\n' % (self.dns_port, self.mx_port))
        self.addCleanup(server.stop)
        with smtplib.SMTP("127.0.0.1", submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["inside@example.net"], b"Subject: x\r\n\r\nx\r\n")
            s.sendmail("alice@example.test", ["lit@[127.0.0.2]"], b"Subject: y\r\n\r\ny\r\n")
        deadline = time.time() + 15
        log = ""
        while time.time() < deadline:
            log = ctl(server.config, "log", "dump", "--json").stdout.decode()
            if '"kind":"Deferred"' in log and '"kind":"Bounced"' in log:
                break
            time.sleep(0.2)
        self.assertIn("is 127.0.0.2, not a public address", log)
        self.assertIn("[127.0.0.2] is not a public address", log)
        with self.assertRaises(AssertionError):
            arrived(self.mx1_dir, "inside@example.net", timeout=1)

    def test_messages_to_one_server_share_a_connection(self):
        """Like Postfix's connection cache: after the reply to the end of
        data, the next message to the same server goes on the same
        connection (no new TCP, TLS or EHLO)."""
        submission = free_port()
        server = MailServer("a3-reuse-d-", [("submission", submission)], ["alice"], "started:",
                            outbound='[outbound]\nresolvers = ["127.0.0.1@%d"]\nmx_port = %d\n'
                                     'allow_private_destinations = true\n'
                                     'max_connections_per_destination = 1\n'
                                     % (self.dns_port, self.mx_port))
        self.addCleanup(server.stop)
        rcpts = ["reuse%d@example.net" % i for i in range(4)]
        with smtplib.SMTP("127.0.0.1", submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            for r in rcpts:
                s.sendmail("alice@example.test", [r], b"Subject: %s\r\n\r\nx\r\n" % r.encode())
        peers = set()
        for r in rcpts:
            data = arrived(self.mx1_dir, r)
            peers.add(data.split(b"X-Test-Peer: ")[1].split(b"\r\n")[0])
        self.assertEqual(len(peers), 1, peers)

    def test_the_mx_port_never_relays(self):
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
            s.ehlo("spammer.example")
            s.mail("spammer@example.org")
            code, text = s.rcpt("victim@example.net")
            self.assertEqual(code, 550, text)

    def test_queue_survives_sigkill_and_delivers_when_the_server_comes_back(self):
        self.submit(["eve@down.example"])
        deadline = time.time() + 15
        while time.time() < deadline and not any("eve@down.example" in e
                                                  for e in self.events("Deferred")):
            time.sleep(0.2)
        self.assertTrue(any("eve@down.example" in e for e in self.events("Deferred")))
        listing = ctl(self.config, "queue", "list").stdout.decode()
        self.assertIn("eve@down.example", ctl(self.config, "queue", "list", "--json").stdout.decode())
        self.server.daemon.proc.send_signal(signal.SIGKILL)
        self.server.daemon.proc.wait(10)
        mta = start_mta("127.0.0.5", self.mx_port, self.down_dir)
        self.mtas.append(mta)
        from test_daemon import Daemon
        self.server.daemon = Daemon(self.config)
        self.server.daemon.wait_for("started:")
        arrived(self.down_dir, "eve@down.example", timeout=30)
        self.assertTrue(listing)


    def test_sigkill_mid_delivery_delivers_at_most_once_more(self):
        """Killed while the remote server has the whole message and has not
        answered: after the restart the message goes again (the attempt was
        durable before the connection), once."""
        self.submit(["stallonce@example.net"])
        marker = os.path.join(self.mx1_dir, "stalled-stallonce")
        deadline = time.time() + 20
        while time.time() < deadline and not os.path.exists(marker):
            time.sleep(0.1)
        self.assertTrue(os.path.exists(marker), "the remote server got the message")
        self.server.daemon.proc.send_signal(signal.SIGKILL)
        self.server.daemon.proc.wait(10)
        from test_daemon import Daemon
        self.server.daemon = Daemon(self.config)
        self.server.daemon.wait_for("started:")
        arrived(self.mx1_dir, "stallonce@example.net", timeout=30)
        self.wait_queue_empty()
        copies = 0
        for path in glob.glob(os.path.join(self.mx1_dir, "*.eml")):
            with open(path, "rb") as f:
                copies += b"X-Test-Rcpt-To: <stallonce@example.net>" in f.read()
        self.assertEqual(copies, 1)
        attempts = [e for e in self.events("DeliveryAttempted") if "stallonce@example.net" in e]
        self.assertEqual(len(attempts), 2, attempts)

    def test_an_unknown_relay_host_defers_with_the_reason(self):
        submission = free_port()
        server = MailServer("a3-relay-unknown-d-", [("submission", submission)], ["alice"],
                            "started:",
                            outbound='[outbound]\nresolvers = ["127.0.0.1@%d"]\n'
                                     'retry_initial_s = 60\n'
                                     '[smtp]\nrelay_host = "relay.nowhere.example"\n'
                                     % self.dns_port)
        self.addCleanup(server.stop)
        with smtplib.SMTP("127.0.0.1", submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["lee@anywhere.example"], b"Subject: x\r\n\r\nx\r\n")
        deadline = time.time() + 15
        log = ""
        while time.time() < deadline and '"kind":"Deferred"' not in log:
            log = ctl(server.config, "log", "dump", "--json").stdout.decode()
            time.sleep(0.2)
        self.assertIn("Relay host relay.nowhere.example", log)
        self.assertNotIn('"kind":"Bounced"', log, "our relay's name is never the recipient's fault")

    def test_a_relay_that_is_down_and_comes_back(self):
        work = tempfile.TemporaryDirectory(prefix="a3-relay-down-")
        self.addCleanup(work.cleanup)
        port, submission = free_port(), free_port()
        relay_dir = os.path.join(work.name, "relay")
        server = MailServer("a3-relay-down-d-", [("submission", submission)], ["alice"],
                            "started:",
                            outbound='[outbound]\nresolvers = ["127.0.0.1@9"]\n'
                                     'retry_initial_s = 1\nretry_max_s = 1\nconnect_timeout_s = 2\n'
                                     '[smtp]\nrelay_host = "127.0.0.7"\nrelay_port = %d\n' % port)
        self.addCleanup(server.stop)
        with smtplib.SMTP("127.0.0.1", submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["kim@anywhere.example"],
                       b"Subject: relay down\r\n\r\nwaiting\r\n")
        deadline = time.time() + 15
        log = ""
        while time.time() < deadline and '"kind":"Deferred"' not in log:
            log = ctl(server.config, "log", "dump", "--json").stdout.decode()
            time.sleep(0.2)
        self.assertIn('"kind":"Deferred"', log, "the relay is down: deferred, kept")
        self.assertIn("kim@anywhere.example",
                      ctl(server.config, "queue", "list", "--json").stdout.decode())
        relay = start_mta("127.0.0.7", port, relay_dir)
        self.addCleanup(relay.wait, 10)
        self.addCleanup(relay.terminate)
        data = arrived(relay_dir, "kim@anywhere.example", timeout=30)
        self.assertIn(b"Subject: relay down", data)


class LargeSignedTest(unittest.TestCase):
    """A message larger than a staged chunk is signed while it streams in,
    and the signature still verifies. (A daemon of its own: with bodies in
    RocksDB blob files, a3ctl's secondary instance of the log is unsafe,
    see issue 13, and the other tests read the log.)"""

    def test_large_message_is_signed_while_it_streams(self):
        work = tempfile.TemporaryDirectory(prefix="a3-large-")
        self.addCleanup(work.cleanup)
        port, submission = free_port(), free_port()
        sink_dir = os.path.join(work.name, "relay")
        relay = start_mta("127.0.0.8", port, sink_dir)
        self.addCleanup(relay.wait, 10)
        self.addCleanup(relay.terminate)
        key, record = make_dkim_key(work.name, "rsa", "rsa")
        server = MailServer("a3-large-d-", [("submission", submission)], ["alice"], "started:",
                            outbound='[outbound]\nresolvers = ["127.0.0.1@9"]\n'
                                     '[[outbound.dkim]]\ndomain = "example.test"\n'
                                     'selector = "s1"\nprivate_key = "%s"\n'
                                     '[smtp]\nrelay_host = "127.0.0.8"\nrelay_port = %d\n'
                                     % (key, port))
        self.addCleanup(server.stop)
        line = b"0123456789" * 7 + b"\r\n"
        body = b"From: alice@example.test\r\nSubject: big signed\r\n\r\n" + line * 20000
        with smtplib.SMTP("127.0.0.1", submission, timeout=30) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["bigsigned@example.net"], body)
        data = arrived(sink_dir, "bigsigned@example.net")
        self.assertGreater(len(data), 1 << 20)
        self.assertEqual(dkim_verdict(data, work.name, "s1", "example.test", record), "pass")


class RelayTest(unittest.TestCase):
    """The deployment guide's smarthost: everything goes to relay_host, with
    STARTTLS and AUTH whose password comes from the environment."""

    def test_everything_goes_through_the_relay_with_auth(self):
        work = tempfile.TemporaryDirectory(prefix="a3-relay-")
        self.addCleanup(work.cleanup)
        make_cert(work.name)
        port, submission = free_port(), free_port()
        relay_dir = os.path.join(work.name, "relay")
        relay = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "remote_mta.py"),
                                  "127.0.0.6", str(port), relay_dir, "--relay",
                                  os.path.join(work.name, "cert.pem"),
                                  os.path.join(work.name, "key.pem"), "relayuser:s3cret"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert relay.stdout.readline().strip() == b"listening", relay.stderr.read()
        self.addCleanup(relay.wait, 10)
        self.addCleanup(relay.terminate)
        os.environ["A3_RELAY_PASSWORD"] = "s3cret"
        self.addCleanup(os.environ.pop, "A3_RELAY_PASSWORD")
        server = MailServer("a3-relay-d-", [("submission", submission)], ["alice"], "started:",
                            outbound='[outbound]\nresolvers = ["127.0.0.1@9"]\n'
                                     '[smtp]\nrelay_host = "127.0.0.6"\nrelay_port = %d\n'
                                     'relay_auth = true\nrelay_username = "relayuser"\n' % port)
        self.addCleanup(server.stop)
        with smtplib.SMTP("127.0.0.1", submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", ["zed@anywhere.example", "yan@elsewhere.example"],
                       b"Subject: via relay\r\n\r\nrelayed\r\n")
        data = arrived(relay_dir, "zed@anywhere.example")
        self.assertIn(b"X-Test-Rcpt-To: <yan@elsewhere.example>", data, "one transaction")
        self.assertIn(b"X-Test-Auth: relayuser", data)
        self.assertIn(b"Subject: via relay", data)
        log = ctl(server.config, "log", "dump", "--json").stdout.decode()
        self.assertNotIn("s3cret", log, "credentials never reach the log")
        self.assertIn('"kind":"Delivered"', log)


def spki_sha256(cert):
    """The TLSA 3 1 1 association data of a certificate (RFC 6698 2.1)."""
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, check=True,
                         capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


def signed_zone(directory, name, records, unsigned=()):
    """`records` signed with fresh keys (ldns-keygen, ldns-signzone), and
    `unsigned` ones added after (bogus to a validator); returns the signed
    zone file and the trust anchor (the key's DS record)."""
    zone = os.path.join(directory, name + ".zone")
    with open(zone, "w") as f:
        f.write("$ORIGIN %s.\n$TTL 300\n" % name)
        f.write("@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n@ NS ns.%s.\n"
                "ns A 127.0.0.1\n" % (name, name, name))
        f.write("\n".join(records) + "\n")
    keys = []
    for extra in (["-k"], []):
        keys.append(subprocess.run(["ldns-keygen", "-a", "ED25519", *extra, name], cwd=directory,
                                   check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run(["ldns-signzone", zone, *keys], cwd=directory, check=True, capture_output=True)
    with open(zone + ".signed", "a") as f:
        f.write("\n".join(unsigned) + "\n")
    return zone + ".signed", os.path.join(directory, keys[0] + ".ds")


class DaneTest(unittest.TestCase):
    """DANE (RFC 7672): TLSA records that validate make TLS mandatory and the
    certificate must match; a mismatch, a missing STARTTLS or a bogus answer
    defers (after trying the next MX host); no TLSA: opportunistic TLS."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.TemporaryDirectory(prefix="a3-dane-")
        w = cls.work.name
        cls.dns_port, cls.mx_port = free_port(), free_port()
        for who in ("good", "other"):
            os.makedirs(os.path.join(w, who))
            make_cert(os.path.join(w, who))
        good = spki_sha256(os.path.join(w, "good", "cert.pem"))
        tlsa = "TLSA 3 1 1 " + good
        p = cls.mx_port
        zone, anchor = signed_zone(w, "dane.example", [
            "@ MX 10 mx", "mx A 127.0.0.11", "_%d._tcp.mx %s" % (p, tlsa),
            # The host's certificate is not the one its TLSA record names.
            "wrong MX 10 mxw", "mxw A 127.0.0.12", "_%d._tcp.mxw %s" % (p, tlsa),
            # TLSA records, but the host offers no STARTTLS.
            "plain MX 10 mxp", "mxp A 127.0.0.13", "_%d._tcp.mxp %s" % (p, tlsa),
            # The preferred host fails DANE; the next one passes.
            "fallback MX 10 mxw", "fallback MX 20 mx",
            # No TLSA record: TLS as offered (opportunistic).
            "nodane MX 10 mxn", "mxn A 127.0.0.12",
        ], unsigned=["bogus.dane.example. 300 IN MX 10 mx.dane.example."])
        cls.dns = start_dns(w, cls.dns_port, cls.mx_port, signed_zone=("dane.example", zone))
        cls.dirs = {h: os.path.join(w, "mta-" + h) for h in ("good", "other", "plain")}
        cls.mtas = [
            start_mta("127.0.0.11", p, cls.dirs["good"], "--tls",
                      os.path.join(w, "good", "cert.pem"), os.path.join(w, "good", "key.pem")),
            start_mta("127.0.0.12", p, cls.dirs["other"], "--tls",
                      os.path.join(w, "other", "cert.pem"), os.path.join(w, "other", "key.pem")),
            start_mta("127.0.0.13", p, cls.dirs["plain"]),
        ]
        cls.submission = free_port()
        cls.server = MailServer(
            "a3-dane-d-", [("submission", cls.submission)], ["alice"], "started:",
            outbound='[outbound]\nresolvers = ["127.0.0.1@%d"]\nmx_port = %d\n'
                     'retry_initial_s = 60\nallow_private_destinations = true\n'
                     'dnssec_trust_anchors = ["%s"]\n' % (cls.dns_port, cls.mx_port, anchor))
        cls.config = cls.server.config

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        for p in cls.mtas + [cls.dns]:
            p.kill()
            p.wait()
        cls.work.cleanup()

    def submit(self, to):
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
            s.starttls(context=tls_client())
            s.login("alice@example.test", "pw")
            s.sendmail("alice@example.test", [to], b"Subject: dane\r\n\r\nHello.\r\n")

    def outcome(self, rcpt, timeout=30):
        """The first Delivered or Deferred event for `rcpt`, as JSON."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = ctl(self.config, "log", "dump", "--json").stdout.decode()
            for line in out.splitlines():
                if ('"kind":"Delivered"' in line or '"kind":"Deferred"' in line) and rcpt in line:
                    return line
            time.sleep(0.2)
        raise AssertionError("no outcome for %s" % rcpt)

    def test_a_matching_certificate_is_delivered_over_tls(self):
        self.submit("a@dane.example")
        data = arrived(self.dirs["good"], "a@dane.example")
        self.assertIn(b"X-Test-TLS: yes", data)

    def test_a_certificate_that_does_not_match_defers(self):
        self.submit("b@wrong.dane.example")
        line = self.outcome("b@wrong.dane.example")
        self.assertIn('"kind":"Deferred"', line)
        self.assertIn("does not match the TLSA records", line)

    def test_no_starttls_where_tlsa_records_are_defers(self):
        self.submit("c@plain.dane.example")
        line = self.outcome("c@plain.dane.example")
        self.assertIn('"kind":"Deferred"', line)
        self.assertIn("offers no STARTTLS", line)
        with self.assertRaises(AssertionError):
            arrived(self.dirs["plain"], "c@plain.dane.example", timeout=1)

    def test_the_next_mx_host_is_tried_after_a_dane_failure(self):
        self.submit("d@fallback.dane.example")
        self.assertIn(b"X-Test-TLS: yes", arrived(self.dirs["good"], "d@fallback.dane.example"))
        with self.assertRaises(AssertionError):
            arrived(self.dirs["other"], "d@fallback.dane.example", timeout=1)

    def test_a_bogus_answer_defers(self):
        self.submit("e@bogus.dane.example")
        line = self.outcome("e@bogus.dane.example")
        self.assertIn('"kind":"Deferred"', line)
        self.assertIn("DNSSEC validation failed", line)

    def test_without_tlsa_records_tls_is_opportunistic(self):
        self.submit("f@nodane.dane.example")
        self.assertIn(b"X-Test-TLS: yes", arrived(self.dirs["other"], "f@nodane.dane.example"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
