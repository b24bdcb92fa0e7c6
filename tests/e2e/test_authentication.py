"""SPF, DKIM and DMARC on the MX port, end to end: a real DNS server
(Debian's unbound, local zones on loopback) publishes the test domains'
SPF, DKIM and DMARC records; clients connect from other loopback addresses
(the "remote hosts"); messages are signed by an independent implementation
(python3-dkim). The results are read back over IMAP (the
Authentication-Results header, the mailbox, the flags) and from the log."""
import imaplib
import json
import re
import os
import smtplib
import subprocess
import tempfile
import time
import unittest

from mailtest import MailServer, ctl, free_port, start_unbound, tls_client
from test_outbound import make_dkim_key

HERE = os.path.dirname(os.path.abspath(__file__))
GOOD_HOST = "127.0.0.20"   # named in the senders' SPF records
OTHER_HOST = "127.0.0.21"  # named nowhere
TRUSTED_HOST = "127.0.0.30"


def txt(name, value):
    # One TXT record; values longer than 255 octets in several strings.
    parts = [value[i:i + 255] for i in range(0, len(value), 255)]
    return '%s. TXT %s' % (name, " ".join('"%s"' % p for p in parts))


def message(sender, subject, extra=b""):
    return (b"From: Sender <%s>\r\nTo: alice@example.test\r\nSubject: %s\r\n"
            b"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <%s@test>\r\n%s\r\n"
            b"Hello from %s.\r\n" % (sender.encode(), subject.encode(),
                                     subject.replace(" ", "-").encode(), extra, sender.encode()))


class AuthenticationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.TemporaryDirectory(prefix="a3-auth-")
        cls.key, record = make_dkim_key(cls.work.name, "sender", "rsa")
        spf = "v=spf1 ip4:%s -all" % GOOD_HOST
        cls.dns_port = free_port()
        cls.dns = start_unbound(cls.work.name, cls.dns_port, {
            # Aligned SPF and DKIM, p=reject; subdomains get sp=quarantine.
            "signed.example": [txt("signed.example", spf),
                               txt("s1._domainkey.signed.example", record),
                               txt("_dmarc.signed.example",
                                   "v=DMARC1; p=reject; sp=quarantine")],
            "quarantine.example": [txt("quarantine.example", spf),
                                   txt("_dmarc.quarantine.example", "v=DMARC1; p=quarantine")],
            "soft.example": [txt("soft.example", "v=spf1 ~all")],
            # Nothing published at all.
            "plain.example": ["plain.example. A 127.0.0.40"],
        })
        cls.mx, cls.imaps = free_port(), free_port()
        extra = ('[outbound]\nresolvers = ["127.0.0.1@%d"]\ntrusted_networks = ["%s/32"]\n'
                 % (cls.dns_port, TRUSTED_HOST))
        cls.server = MailServer("a3-auth-d-", [("smtp", cls.mx), ("imaps", cls.imaps)],
                                ["alice"], "started:", outbound=extra)
        cls.config = cls.server.config

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.dns.kill()
        cls.dns.wait()
        cls.work.cleanup()

    def signed(self, body, domain="signed.example"):
        r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "dkim_sign.py"), self.key,
                            "s1", domain], input=body, capture_output=True, check=True)
        return r.stdout

    def send(self, source, sender, body):
        """The reply to the end of the message, as (code, text)."""
        with smtplib.SMTP("127.0.0.1", self.mx, timeout=30,
                          source_address=(source, 0)) as s:
            s.ehlo("mail." + sender.split("@")[1])
            s.mail(sender)
            s.rcpt("alice@example.test")
            code, text = s.data(body)
            return code, text.decode()

    def fetch(self, subject, timeout=20):
        """(mailbox, flags, the message) of the message with `subject`."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            c = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=tls_client(), timeout=10)
            c.login("alice@example.test", "pw")
            try:
                for mailbox in ("INBOX", "Junk"):
                    c.select(mailbox)
                    typ, data = c.search(None, "SUBJECT", '"%s"' % subject)
                    if data[0]:
                        n = data[0].split()[-1]
                        typ, data = c.fetch(n, "(FLAGS BODY.PEEK[])")
                        return mailbox, data[0][0].decode(), data[0][1]
            finally:
                c.logout()
            time.sleep(0.2)
        raise AssertionError("no message %r" % subject)

    @staticmethod
    def results(stored):
        """The Authentication-Results field at the top, unfolded."""
        head = stored.split(b"\r\n\r\n")[0].decode()
        assert head.startswith("Authentication-Results: localhost;"), head[:300]
        field = head.split("\r\nReceived: ")[0]
        return " ".join(field.replace("\r\n", " ").split())

    def test_aligned_spf_and_dkim_pass_dmarc(self):
        body = self.signed(message("news@signed.example", "all pass"))
        self.assertEqual(self.send(GOOD_HOST, "news@signed.example", body)[0], 250)
        mailbox, flags, stored = self.fetch("all pass")
        self.assertEqual(mailbox, "INBOX")
        ar = self.results(stored)
        self.assertIn("spf=pass", ar)
        self.assertIn("smtp.mailfrom=news@signed.example", ar)
        self.assertIn("dkim=pass header.d=signed.example header.s=s1 header.b=", ar)
        self.assertIn("dmarc=pass (p=reject) header.from=signed.example", ar)
        self.assertTrue(stored.endswith(body), stored[-200:])
        # The results are in the event too, for the audit trail.
        r = ctl(self.config, "log", "dump", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        events = [json.loads(line)["event"] for line in r.stdout.decode().splitlines() if line]
        auth = [e["body"]["smtp"]["authentication"] for e in events
                if e["kind"] == "MessageAppended" and "authentication" in e["body"].get("smtp", {})
                and e["body"]["smtp"]["mail_from"] == "news@signed.example"
                and e["body"]["smtp"]["authentication"]["dkim"] == "pass"]
        self.assertTrue(auth, events[-3:])
        self.assertEqual(auth[-1]["spf"], "pass")
        self.assertEqual(auth[-1]["dkim_domains"], ["signed.example"])
        self.assertEqual(auth[-1]["dmarc"], "pass")
        self.assertEqual(auth[-1]["disposition"], "deliver")

    def test_delivered_reports_go_only_to_senders_spf_vouches_for(self):
        def report_queued_to(sender, source, subject):
            with smtplib.SMTP("127.0.0.1", self.mx, timeout=30,
                              source_address=(source, 0)) as s:
                s.ehlo("mail.example")
                s.mail(sender)
                s.rcpt("alice@example.test", ["NOTIFY=SUCCESS"])
                self.assertEqual(s.data(message(sender, subject))[0], 250)
            # Queued from <> (and maybe bounced at once: these domains have
            # no mail host), so looked for in the log.
            log = ctl(self.config, "log", "dump", "--json").stdout.decode()
            return any('"kind":"OutboundQueued"' in line and sender in line
                       for line in log.splitlines())
        self.assertTrue(report_queued_to("news@signed.example", GOOD_HOST, "report me"))
        # A sender SPF does not vouch for: no report (it would be backscatter).
        self.assertFalse(report_queued_to("someone@plain.example", OTHER_HOST, "no report"))

    def test_dmarc_reject_refuses_a_forgery(self):
        body = message("ceo@signed.example", "forged")
        code, text = self.send(OTHER_HOST, "ceo@signed.example", body)
        self.assertEqual(code, 550, text)
        self.assertIn("5.7.1", text)
        self.assertIn("DMARC", text)
        with self.assertRaises(AssertionError):
            self.fetch("forged", timeout=2)

    def test_a_second_author_does_not_hide_a_forged_one(self):
        # RFC 7489 6.6.1: every author domain is judged; the strictest wins.
        body = (b"From: x@plain.example\r\nFrom : ceo@signed.example\r\n" +
                message("someone@plain.example", "two authors").split(b"\r\n", 1)[1])
        code, text = self.send(OTHER_HOST, "someone@plain.example", body)
        self.assertEqual(code, 550, text)
        self.assertIn("signed.example", text)

    def test_a_broken_signature_fails_dkim_but_aligned_spf_passes_dmarc(self):
        body = self.signed(message("news@signed.example", "tampered"))
        body = body.replace(b"Hello from", b"Hullo from")
        self.assertEqual(self.send(GOOD_HOST, "news@signed.example", body)[0], 250)
        mailbox, flags, stored = self.fetch("tampered")
        ar = self.results(stored)
        self.assertIn("dkim=fail", ar)
        self.assertIn("spf=pass", ar)
        self.assertIn("dmarc=pass", ar)
        self.assertEqual(mailbox, "INBOX")

    def test_quarantine_files_into_junk(self):
        body = message("offers@quarantine.example", "quarantined")
        self.assertEqual(self.send(OTHER_HOST, "offers@quarantine.example", body)[0], 250)
        mailbox, flags, stored = self.fetch("quarantined")
        self.assertEqual(mailbox, "Junk")
        self.assertIn("$Junk", flags)
        ar = self.results(stored)
        self.assertIn("spf=fail", ar)
        self.assertIn("dmarc=fail (p=quarantine) header.from=quarantine.example", ar)

    def test_a_subdomain_gets_the_organizational_domains_sp(self):
        # No _dmarc.eu.signed.example: the organizational domain's record,
        # with its subdomain policy (sp=quarantine), not p=reject.
        body = message("team@eu.signed.example", "subdomain")
        self.assertEqual(self.send(OTHER_HOST, "team@eu.signed.example", body)[0], 250)
        mailbox, flags, stored = self.fetch("subdomain")
        self.assertEqual(mailbox, "Junk")
        self.assertIn("dmarc=fail (p=quarantine) header.from=eu.signed.example",
                      self.results(stored))

    def test_nothing_published_is_none_and_softfail_is_delivered(self):
        body = message("someone@plain.example", "nothing published")
        self.assertEqual(self.send(OTHER_HOST, "someone@plain.example", body)[0], 250)
        mailbox, _, stored = self.fetch("nothing published")
        ar = self.results(stored)
        self.assertEqual(mailbox, "INBOX")
        for expected in ("spf=none", "dkim=none", "dmarc=none"):
            self.assertIn(expected, ar)
        body = message("someone@soft.example", "soft failure")
        self.assertEqual(self.send(OTHER_HOST, "someone@soft.example", body)[0], 250)
        mailbox, _, stored = self.fetch("soft failure")
        self.assertEqual(mailbox, "INBOX")
        self.assertIn("spf=softfail", self.results(stored))

    def test_forged_results_are_removed_and_trusted_hosts_are_not_checked(self):
        forged = b"Authentication-Results: localhost;\r\n\tdkim=pass header.d=bank.example\r\n"
        body = forged + message("someone@plain.example", "forged results")
        self.assertEqual(self.send(OTHER_HOST, "someone@plain.example", body)[0], 250)
        _, _, stored = self.fetch("forged results")
        self.assertEqual(stored.count(b"Authentication-Results:"), 1, stored[:600])
        self.assertNotIn(b"bank.example", stored)
        # Someone else's results stay (only ours are claims about us).
        theirs = b"Authentication-Results: mx.other.example; spf=pass\r\n"
        body = theirs + message("someone@plain.example", "their results")
        self.assertEqual(self.send(OTHER_HOST, "someone@plain.example", body)[0], 250)
        _, _, stored = self.fetch("their results")
        self.assertIn(theirs, stored)
        # A trusted network's client is not checked: no results added.
        body = message("ceo@signed.example", "from a trusted host")
        self.assertEqual(self.send(TRUSTED_HOST, "ceo@signed.example", body)[0], 250)
        mailbox, _, stored = self.fetch("from a trusted host")
        self.assertEqual(mailbox, "INBOX")
        self.assertTrue(stored.startswith(b"Received: from "), stored[:200])


class LargeMessageTest(unittest.TestCase):
    """A message large enough to go to the log while it arrives (staged)
    loses forged results all the same. (A daemon of its own: with bodies in
    RocksDB blob files, a3ctl's secondary instance of the log is unsafe,
    see issue 13, and the other tests read the log. Nothing answers DNS
    here: the checks give temperror within their short budget.)"""

    def test_forged_results_are_removed_from_a_staged_message(self):
        mx, imaps = free_port(), free_port()
        server = MailServer("a3-auth-large-d-", [("smtp", mx), ("imaps", imaps)], ["alice"],
                            "started:", outbound='[outbound]\nresolvers = ["127.0.0.1@9"]\n'
                                                 '[smtp]\ncheck_dns_timeout_s = 1\n')
        self.addCleanup(server.stop)
        forged = b"Authentication-Results: localhost; dmarc=pass header.from=bank.example\r\n"
        body = forged + message("someone@plain.example", "large forged",
                                b"X-Padding: " + b"p" * 900 + b"\r\n")
        body += (b"y" * 998 + b"\r\n") * 700  # about 700 KiB: staged
        with smtplib.SMTP("127.0.0.1", mx, timeout=60, source_address=(OTHER_HOST, 0)) as s:
            s.sendmail("someone@plain.example", ["alice@example.test"], body)
        deadline = time.time() + 20
        header = b""
        while time.time() < deadline and not header:
            c = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=tls_client(), timeout=10)
            c.login("alice@example.test", "pw")
            c.select("INBOX")
            typ, data = c.fetch("1", "(BODY.PEEK[HEADER])")
            if typ == "OK" and data and data[0] and isinstance(data[0], tuple):
                header = data[0][1]
                typ, size = c.fetch("1", "(RFC822.SIZE)")
                self.assertGreater(int(re.search(rb"RFC822.SIZE (\d+)", size[0]).group(1)),
                                   700000)
            c.logout()
            time.sleep(0.2)
        self.assertEqual(header.count(b"Authentication-Results:"), 1, header[:800])
        self.assertNotIn(b"bank.example", header)
        # DNS does not answer: SPF could not be checked (RFC 7208 2.6.6).
        self.assertIn(b"spf=temperror", header)


if __name__ == "__main__":
    unittest.main(verbosity=2)
