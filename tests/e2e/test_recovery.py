#!/usr/bin/env python3
"""End-to-end: every a3ctl command that reads or rebuilds the store, on a
realistic store.

tools/genstore writes 16,000 messages from 1 KiB to 3 MiB (bodies in RocksDB
blob files, the largest staged in BodyChunk events) for 40 accounts over 4
partitions, with flag changes, moves and expunges. The daemon projects it,
is SIGKILLed twice under SMTP load, and then verify (daemon running and
stopped), replay, log dump, log tail, log end, backup, restore and account
restore each run on that store and are checked against what the generator
wrote and what SMTP acknowledged.
"""
import imaplib
import json
import os
import random
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from mailtest import NO_CHECKS, Senders, free_port
from test_daemon import A3CTL, BIN, Daemon, write_config

GENSTORE = os.path.join(BIN, "a3-genstore")


def ctl(config, *args, timeout=300):
    return subprocess.run([A3CTL, "--config", config, *args], capture_output=True,
                          timeout=timeout)


def counts(config):
    """{account: {mailbox: messages}} from `a3ctl account list --json`."""
    r = ctl(config, "account", "list", "--json")
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.decode().splitlines():
        a = json.loads(line)
        out[a["account"]] = {m["name"]: m["messages"] for m in a["mailboxes"]
                             if m["name"] in ("INBOX", "Archive")}
    return out


def digest_of(output):
    """The digest a3ctl replay or verify printed."""
    text = output.decode()
    return text.rsplit("digest ", 1)[1].split()[0] if "digest " in text else \
        text.split("fresh replay at ", 1)[1].split(": ", 1)[1].split()[0]


class RecoveryToolsOnARealisticStoreTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="a3-recovery-")
        self.smtp, self.imap = free_port(), free_port()
        self.config = write_config(
            self.tmp.name,
            '[[server.listener]]\nprotocol = "smtp"\nbind = "127.0.0.1:%d"\n'
            '[[server.listener]]\nprotocol = "imap"\nbind = "127.0.0.1:%d"\n'
            '[eventlog]\npartitions = 4\n[database]\nenabled = false\n'
            '[imap]\nallow_plaintext_auth = true\n[security]\nauth_failures_before_delay = 1000\n'
            '[outbound]\nresolvers = ["127.0.0.1@9"]\n' % (self.smtp, self.imap) + NO_CHECKS)
        summary = os.path.join(self.tmp.name, "summary.json")
        r = subprocess.run([GENSTORE, "--config", self.config, "--accounts", "40", "--messages",
                            "16000", "--max-size", "3M", "--large-fraction", "0.004",
                            "--summary", summary], capture_output=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(summary) as f:
            self.summary = json.load(f)
        self.daemon = None

    def tearDown(self):
        if self.daemon and self.daemon.proc.poll() is None:
            self.daemon.proc.kill()
            self.daemon.proc.wait()
        self.tmp.cleanup()

    def start(self):
        self.daemon = Daemon(self.config)
        self.daemon.wait_for("started: event log", timeout=120)
        return self.daemon

    def wait_counts(self, expected, timeout=120, at_least=False):
        """The counts once they equal `expected` (with at_least: once none
        is below it), or as they are at the timeout."""
        deadline = time.time() + timeout
        while True:
            got = counts(self.config)
            if at_least:
                done = got.keys() == expected.keys() and all(
                    got[a][b] >= n for a in expected for b, n in expected[a].items())
            else:
                done = got == expected
            if done or time.time() > deadline:
                return got
            time.sleep(0.5)

    def imap_tokens(self, account):
        """The Subject of every message in the account's INBOX."""
        m = imaplib.IMAP4("127.0.0.1", self.imap, timeout=60)
        m.login(account, "password")
        m.select("INBOX", readonly=True)
        typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        m.logout()
        self.assertEqual(typ, "OK")
        return [item[1].decode().split(":", 1)[1].strip() for item in data
                if isinstance(item, tuple)]

    def step(self, what):
        """Prints how long each step took (the CI log shows where time goes)."""
        now = time.time()
        print("  %5.1f s  %s" % (now - self.t, what), file=sys.stderr, flush=True)
        self.t = now

    def test_every_recovery_command_on_a_crashed_realistic_store(self):
        self.t = time.time()
        accounts = sorted(self.summary["mailboxes"])
        self.assertEqual(len(accounts), 40)
        self.assertGreaterEqual(self.summary["messages"], 16000)
        self.assertGreater(self.summary["staged_messages"], 20)
        self.assertGreater(self.summary["largest"], 1 << 20)

        # The daemon projects what the generator wrote: every mailbox has
        # exactly the messages the generator left in it.
        d = self.start()
        self.assertEqual(self.wait_counts(self.summary["mailboxes"]), self.summary["mailboxes"])
        self.step("projected the generated store")
        base = ctl(self.config, "log", "end").stdout.decode().split()
        r = ctl(self.config, "verify")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn(b"OK: the view is exactly what its log says", r.stdout)

        self.step("verify, daemon running")
        # Two SIGKILLs under SMTP load; restarts recover the log and the view.
        senders = Senders(self.smtp, accounts)
        for _ in range(2):
            time.sleep(random.uniform(1.5, 3.0))
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
            d.log.close()
            d = self.start()
        time.sleep(1.0)
        senders.stop()
        acked = list(senders.acked)
        self.assertGreater(len(acked), 50)

        self.step("two SIGKILLs under load")
        # log tail follows the running daemon through a staged 2 MB message.
        tail = subprocess.Popen([A3CTL, "--config", self.config, "log", "tail"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            s.sendmail("big@example.net", [accounts[0]],
                       "Subject: tail-big\r\n\r\n" + ("t" * 76 + "\r\n") * 27000)
        acked.append((accounts[0], "tail-big"))
        time.sleep(2.0)
        tail.send_signal(signal.SIGINT)
        out, err = tail.communicate(timeout=30)
        self.assertEqual(tail.returncode, 0, err)
        self.assertIn(b"BodyChunk", out)
        self.assertIn(b"MessageAppended", out)

        self.step("log tail")
        # Every 250'd message is in its INBOX exactly once.
        expected = {a: dict(b) for a, b in self.summary["mailboxes"].items()}
        for to, _ in acked:
            expected[to]["INBOX"] += 1
        got = self.wait_counts(expected, at_least=True)
        by_account = {}
        for to, token in acked:
            by_account.setdefault(to, []).append(token)
        for account, tokens in by_account.items():
            subjects = self.imap_tokens(account)
            for token in tokens:
                self.assertEqual(subjects.count(token), 1, (account, token))
        # A message cut off by a kill before its 250 may or may not be
        # there; nothing else is.
        for a in accounts:
            self.assertGreaterEqual(got[a]["INBOX"], expected[a]["INBOX"], a)
            self.assertEqual(got[a]["Archive"], expected[a]["Archive"], a)
        live = counts(self.config)
        self.step("every acknowledged message once")

        # Backup while it runs, then more mail after it.
        backups = os.path.join(self.tmp.name, "backups")
        r = ctl(self.config, "backup", backups)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        at_backup = ctl(self.config, "log", "end").stdout.decode().split()
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as s:
            for i in range(5):
                s.sendmail("late@example.net", [accounts[1]], "Subject: late-%d\r\n\r\nx\r\n" % i)
        r = ctl(self.config, "verify")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn(b"OK: the view is exactly what its log says", r.stdout)
        self.assertEqual(d.stop(), 0, d.output()[-3000:])

        self.step("backup, verify")
        # Stopped: verify, then replay gives the same digest.
        r = ctl(self.config, "verify")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        verified = digest_of(r.stdout)
        r = ctl(self.config, "replay")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertEqual(digest_of(r.stdout), verified)

        self.step("verify and replay, daemon stopped")
        # log dump: every event decodes, in order, and holds every message.
        dump = subprocess.run([A3CTL, "--config", self.config, "log", "dump", "--json"],
                              capture_output=True, timeout=300)
        self.assertEqual(dump.returncode, 0, dump.stderr[-2000:])
        appended = 0
        last, partition_of = {}, {}
        for line in dump.stdout.splitlines():
            e = json.loads(line)
            self.assertNotIn("error", e)
            self.assertEqual(e["offset"], last.get(e["partition"], -1) + 1)
            last[e["partition"]] = e["offset"]
            appended += b'"MessageAppended"' in line
            if e["event"]["kind"] == "AccountCreated":
                partition_of[e["event"]["account"]] = e["partition"]
        self.assertGreaterEqual(appended, self.summary["messages"] + len(acked) + 5)
        self.assertEqual(sum(v + 1 for v in last.values()),
                         sum(int(p.split(":")[1]) for p in
                             ctl(self.config, "log", "end").stdout.decode().split()))

        self.step("log dump")
        # Restore to the backup's offsets: the store as it was then.
        r = ctl(self.config, "restore", backups, *sum((["--to-offset", p] for p in at_backup), []))
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertEqual(counts(self.config), live)
        r = ctl(self.config, "verify")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])

        self.step("restore")
        # account restore: a client expunges a whole account's mail; the
        # account is rolled back on the running daemon, byte for byte, and
        # the other accounts are untouched.
        d = self.start()
        victim = accounts[2]
        mark = next(p for p in ctl(self.config, "log", "end").stdout.decode().split()
                    if p.startswith("%d:" % partition_of[victim]))
        before = sorted(self.imap_tokens(victim))
        m = imaplib.IMAP4("127.0.0.1", self.imap, timeout=60)
        m.login(victim, "password")
        for box in ("INBOX", "Archive"):
            m.select(box)
            self.assertEqual(m.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")[0], "OK")
            self.assertEqual(m.expunge()[0], "OK")
        m.logout()
        self.assertEqual(counts(self.config)[victim], {"INBOX": 0, "Archive": 0})
        self.step("expunged an account")
        r = ctl(self.config, "account", "restore", victim, "--to-offset", mark)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.step("account restore")
        after = counts(self.config)
        self.assertEqual(after[victim], live[victim])
        self.assertEqual(sorted(self.imap_tokens(victim)), before)
        for a in accounts:
            if a != victim:
                self.assertEqual(after[a], live[a], a)
        r = ctl(self.config, "verify")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertEqual(d.stop(), 0, d.output()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
