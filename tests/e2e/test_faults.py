#!/usr/bin/env python3
"""End-to-end: the daemon under disk faults.

- The disk fills up (a small tmpfs holding the log and the view, filled by a
  file): SMTP gets a temporary failure (4xx), never a 250 it cannot keep;
  once space is freed, the daemon takes mail again by itself, with every
  message it acknowledged stored exactly once and the view equal to a fresh
  replay of the log.
- A torn last record in the log's write-ahead log (the tail of a write that
  never completed, as a crash mid-write leaves it): the daemon starts,
  keeps every acknowledged message, and takes mail.

Needs root (mount -t tmpfs), as the rest of the suite does.
"""
import glob
import imaplib
import os
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest

from mailtest import NO_CHECKS, ctl, free_port
from test_daemon import Daemon, write_config


def send(port, to, subject, size):
    """The reply code of one delivery (250, or the refusal's code)."""
    body = "Subject: %s\r\nMessage-ID: <%s@example.net>\r\n\r\n" % (subject, subject)
    body += ("f" * 998 + "\r\n") * (size // 1000)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.sendmail("sender@example.net", [to], body)
        return 250
    except smtplib.SMTPResponseException as e:
        return e.smtp_code
    except smtplib.SMTPRecipientsRefused as e:
        return list(e.recipients.values())[0][0]
    except (smtplib.SMTPServerDisconnected, ConnectionError):
        return -1  # the tests check the daemon is still there


class DiskFaultTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="a3-faults-")
        self.smtp, self.imap = free_port(), free_port()
        self.config = write_config(
            self.tmp.name,
            '[[server.listener]]\nprotocol = "smtp"\nbind = "127.0.0.1:%d"\n'
            '[[server.listener]]\nprotocol = "imap"\nbind = "127.0.0.1:%d"\n'
            '[imap]\nallow_plaintext_auth = true\n'
            '[database]\nenabled = false\n[outbound]\nresolvers = ["127.0.0.1@9"]\n'
            % (self.smtp, self.imap) + NO_CHECKS)
        self.daemon = None
        self.mounted = None

    def tearDown(self):
        if self.daemon and self.daemon.proc.poll() is None:
            self.daemon.proc.kill()
            self.daemon.proc.wait()
        if self.mounted:
            subprocess.run(["umount", "-l", self.mounted], check=False)
        self.tmp.cleanup()

    def subjects(self, who):
        m = imaplib.IMAP4("127.0.0.1", self.imap, timeout=60)
        m.login(who, "pw")
        m.select("INBOX", readonly=True)
        typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        m.logout()
        if typ != "OK" or data == [None]:
            return []
        return [i[1].decode().split(":", 1)[1].strip() for i in data if isinstance(i, tuple)]

    def test_a_full_disk_refuses_mail_temporarily_and_recovers_by_itself(self):
        data = os.path.join(self.tmp.name, "data")
        os.makedirs(data)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320m", "tmpfs", data],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, "mounting a tmpfs needs root: %s" % r.stderr)
        self.mounted = data
        who = "u@example.test"
        self.assertEqual(ctl(self.config, "account", "add", who, "--password", "pw").returncode, 0)
        self.daemon = Daemon(self.config)
        self.daemon.wait_for("started: event log")
        acked = []
        for i in range(5):
            self.assertEqual(send(self.smtp, who, "before-%d" % i, 20000), 250)
            acked.append("before-%d" % i)

        # Fill the disk, then keep delivering 2 MB messages: what the store
        # cannot keep is refused with a temporary failure, never a 250.
        filler = os.path.join(data, "filler")
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=1M"], capture_output=True)
        codes = []
        for i in range(200):
            code = send(self.smtp, who, "full-%d" % i, 2_000_000)
            codes.append(code)
            if code == 250:
                acked.append("full-%d" % i)
            else:
                break
        self.assertIsNone(self.daemon.proc.poll(), self.daemon.output()[-5000:])
        self.assertNotEqual(codes[-1], 250, "a full disk never refused mail: %s" % codes)
        self.assertTrue(400 <= codes[-1] < 500, "a full disk must be a temporary failure: %s"
                        % codes)
        refused = 0
        for i in range(3):
            code = send(self.smtp, who, "refused-%d" % i, 50000)
            self.assertTrue(code == 250 or 400 <= code < 500, code)
            if code == 250:
                acked.append("refused-%d" % i)
            else:
                refused += 1
        self.assertGreater(refused, 0)
        self.assertIn("synced write failed", self.daemon.output())

        # Space again: the daemon takes mail again on its own, no restart.
        os.unlink(filler)
        deadline = time.time() + 60
        for attempt in range(1000):
            # A refused attempt may still have reached the disk (ADR 0013):
            # each has its own subject, and only the acknowledged one counts.
            code = send(self.smtp, who, "after-%d" % attempt, 20000)
            if code == 250:
                acked.append("after-%d" % attempt)
                break
            self.assertLess(time.time(), deadline, "no recovery after the disk had space again")
            time.sleep(0.5)
        self.assertIn("reopened after the failed write", self.daemon.output())
        print("\n  replies while full: %s" % codes, file=sys.stderr)
        for line in self.daemon.output().splitlines():
            if any(w in line for w in ("failed", "reopen", "resum", "works again", "No space")):
                print("  " + line[:200], file=sys.stderr)

        # Everything acknowledged is there exactly once, and the view is what
        # the log says.
        deadline = time.time() + 60
        while True:
            got = self.subjects(who)
            if all(s in got for s in acked) or time.time() > deadline:
                break
            time.sleep(0.5)
        for s in acked:
            self.assertEqual(got.count(s), 1, (s, got))
        r = ctl(self.config, "verify")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"OK: the view is exactly what its log says", r.stdout)
        self.assertEqual(self.daemon.stop(), 0, self.daemon.output()[-3000:])

    def test_a_torn_last_record_in_the_log_is_dropped_and_nothing_acknowledged_is(self):
        who = "u@example.test"
        self.assertEqual(ctl(self.config, "account", "add", who, "--password", "pw").returncode, 0)
        self.daemon = Daemon(self.config)
        self.daemon.wait_for("started: event log")
        acked = ["torn-%d" % i for i in range(20)]
        for s in acked:
            self.assertEqual(send(self.smtp, who, s, 3000), 250)
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait()
        self.daemon.log.close()

        # The write-ahead log ends with part of a record, as a write cut by a
        # crash leaves it: a real record's header (checksum, length, type:
        # the file's first record, which starts the file) and half of its
        # payload.
        wal = sorted(glob.glob(os.path.join(self.tmp.name, "data", "log", "*.log")),
                     key=os.path.getmtime)[-1]
        with open(wal, "rb") as f:
            content = f.read()
        self.assertGreater(len(content), 4096)
        length = content[4] | content[5] << 8
        with open(wal, "ab") as f:
            f.write(content[:7 + max(1, length // 2)])

        self.daemon = Daemon(self.config)
        self.daemon.wait_for("started: event log")
        self.assertEqual(send(self.smtp, who, "after-torn", 3000), 250)
        deadline = time.time() + 30
        while True:
            got = self.subjects(who)
            if "after-torn" in got or time.time() > deadline:
                break
            time.sleep(0.2)
        for s in acked + ["after-torn"]:
            self.assertEqual(got.count(s), 1, (s, got))
        self.assertEqual(len(got), len(acked) + 1)
        r = ctl(self.config, "verify")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.daemon.stop(), 0, self.daemon.output()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
