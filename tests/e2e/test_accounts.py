#!/usr/bin/env python3
"""End-to-end: accounts through a3ctl, with and without the daemon running.

With no daemon, a3ctl opens the store itself; while the daemon runs, its
writes go through the admin socket (mode 0600) and its reads follow the
daemon's view. Either way the output is the same.
"""
import json
import os
import stat
import subprocess
import unittest

from test_daemon import A3CTL, Daemon, write_config

import tempfile


def ctl(config, *args, password=None):
    return subprocess.run([A3CTL, "--config", config, *args], input=password, capture_output=True,
                          text=True, timeout=60)


class AccountTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="a3-e2e-")
        self.config = write_config(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def accounts(self):
        r = ctl(self.config, "account", "list", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return {a["account"]: a for a in map(json.loads, r.stdout.splitlines())}

    def check_lifecycle(self):
        r = ctl(self.config, "account", "add", "Alice@Example.test", "--password-stdin",
                "--alias", "al@example.test", password="s3cret-pass\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("created alice@example.test", r.stdout)
        a = self.accounts()["alice@example.test"]
        self.assertEqual(sorted(a["addresses"]), ["al@example.test", "alice@example.test"])
        boxes = {m["name"]: m["special_use"] for m in a["mailboxes"]}
        self.assertEqual(boxes, {"INBOX": "", "Sent": "\\Sent", "Drafts": "\\Drafts",
                                 "Trash": "\\Trash", "Junk": "\\Junk"})

        # Refusals: existing account, address taken, foreign domain, no password.
        r = ctl(self.config, "account", "add", "alice@example.test", "--password", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already delivers to alice@example.test", r.stderr)
        r = ctl(self.config, "account", "add", "bob@example.test", "--password", "x",
                "--alias", "al@example.test")
        self.assertEqual(r.returncode, 1)
        r = ctl(self.config, "account", "add", "eve@elsewhere.test", "--password", "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("not one of server.local_domains", r.stderr)
        r = ctl(self.config, "account", "add", "eve@example.test", "--password-stdin", password="")
        self.assertEqual(r.returncode, 2)
        self.assertNotIn("eve@example.test", self.accounts())

        r = ctl(self.config, "account", "passwd", "alice@example.test", "--password", "n3w")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ctl(self.config, "account", "alias", "alice@example.test", "remove", "al@example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.accounts()["alice@example.test"]["addresses"], ["alice@example.test"])
        r = ctl(self.config, "account", "add", "bob@example.test", "--password", "x")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ctl(self.config, "account", "delete", "bob@example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(self.accounts()), ["alice@example.test"])

        # The log holds every change as an event, and never a clear password.
        dump = ctl(self.config, "log", "dump", "--json")
        self.assertEqual(dump.returncode, 0, dump.stderr)
        kinds = [json.loads(l)["event"]["kind"] for l in dump.stdout.splitlines()]
        self.assertEqual(kinds, ["AccountCreated", "AccountPasswordChanged",
                                 "AccountAddressesChanged", "AccountCreated", "AccountDeleted"])
        self.assertNotIn("s3cret-pass", dump.stdout)
        self.assertNotIn("argon2", dump.stdout)

    def test_without_a_daemon(self):
        self.check_lifecycle()

    def test_backup_and_restore_to_an_offset(self):
        for who in ("alice", "bob"):
            self.assertEqual(ctl(self.config, "account", "add", who + "@example.test",
                                 "--password", "pw").returncode, 0)
        backups = os.path.join(self.tmp.name, "backups")
        r = ctl(self.config, "backup", backups)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("view at 0:2, log ends 0:2", r.stdout)
        self.assertEqual(ctl(self.config, "account", "add", "carol@example.test", "--password",
                             "pw").returncode, 0)
        self.assertEqual(ctl(self.config, "account", "delete", "alice@example.test").returncode, 0)
        self.assertEqual(sorted(self.accounts()), ["bob@example.test", "carol@example.test"])
        listing = ctl(self.config, "backup", "--list", backups)
        self.assertIn("backup 1", listing.stdout)

        # Back to just after carol was created: alice is back, carol stays.
        r = ctl(self.config, "restore", backups, "--to-offset", "0:3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("the log ends at 0:3", r.stdout)
        self.assertIn("started from backup 1", r.stdout)
        self.assertEqual(sorted(self.accounts()),
                         ["alice@example.test", "bob@example.test", "carol@example.test"])
        self.assertEqual(ctl(self.config, "log", "end").stdout, "0:3\n")
        self.assertEqual(ctl(self.config, "verify").returncode, 0)
        aside = os.listdir(os.path.join(self.tmp.name, "data", "timelines"))
        self.assertEqual(len(aside), 1, "the replaced store is kept aside")

        # Bad targets change nothing.
        r = ctl(self.config, "restore", backups, "--to-offset", "0:99")
        self.assertEqual(r.returncode, 1)
        self.assertIn("reaches", r.stderr)
        self.assertEqual(ctl(self.config, "restore", backups, "--to-time", "yesterday").returncode, 2)
        self.assertEqual(len(self.accounts()), 3)

    def test_replay_rebuilds_the_view_and_verify_checks_it(self):
        self.check_lifecycle()
        before = self.accounts()
        v = ctl(self.config, "verify")
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("OK: the view is exactly what its log says", v.stdout)
        # A lost view is rebuilt from the log.
        import shutil
        shutil.rmtree(os.path.join(self.tmp.name, "data", "view"))
        r = ctl(self.config, "replay")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("replayed the log", r.stdout)
        self.assertIn("5/5 events (100%)", r.stderr)
        self.assertEqual(self.accounts(), before)
        # Replaying over an existing view swaps in an identical one.
        digest = r.stdout.split("digest ")[1].strip()
        r = ctl(self.config, "replay")
        self.assertEqual(r.stdout.split("digest ")[1].strip(), digest)
        self.assertEqual(ctl(self.config, "verify").returncode, 0)
        # Not while the daemon uses the view; verify works while it runs.
        d = Daemon(self.config)
        try:
            d.wait_for("started")
            r = ctl(self.config, "replay")
            self.assertEqual(r.returncode, 1)
            self.assertIn("stop it first", r.stderr)
            self.assertEqual(ctl(self.config, "verify").returncode, 0)
        finally:
            self.assertEqual(d.stop(), 0)

    def test_through_the_running_daemon(self):
        d = Daemon(self.config)
        try:
            d.wait_for("started")
            sock = os.path.join(self.tmp.name, "data", "admin.sock")
            mode = stat.S_IMODE(os.stat(sock).st_mode)
            self.assertEqual(mode & 0o077, 0, "the admin socket is private (%o)" % mode)
            self.check_lifecycle()
            self.assertIn("admin: AccountCreated for alice@example.test", d.output())
            # A hot backup: the running daemon takes it, the same as offline.
            backups = os.path.join(self.tmp.name, "hot-backups")
            r = ctl(self.config, "backup", backups)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("backup 1 in %s: view at 0:5, log ends 0:5" % backups, r.stdout)
            self.assertIn("backup 1", ctl(self.config, "backup", "--list", backups).stdout)
            self.assertNotIn("s3cret-pass", d.output())
        finally:
            self.assertEqual(d.stop(), 0, d.output())
        # After the daemon stopped, a3ctl opens the store itself and sees the same.
        self.assertEqual(sorted(self.accounts()), ["alice@example.test"])
        # And a restarted daemon resumes from the view's stored position.
        d = Daemon(self.config)
        d.wait_for("started")
        r = ctl(self.config, "account", "add", "carol@example.test", "--password", "x")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(d.stop(), 0, d.output())
        self.assertEqual(sorted(self.accounts()), ["alice@example.test", "carol@example.test"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
