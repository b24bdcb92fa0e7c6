#!/usr/bin/env python3
"""End-to-end: the daemon writes the audit trail into a real PostgreSQL
(started here with tools/pg.sh) and a3ctl audit answers from it; with
PostgreSQL stopped, the daemon keeps working and the trail catches up."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from mailtest import NO_CHECKS, Senders, free_port
from test_daemon import A3CTL, Daemon, write_config

PG_SH = os.path.join(os.environ.get("A3_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../..")),
                     "tools", "pg.sh")


def ctl(config, *args, password=None):
    return subprocess.run([A3CTL, "--config", config, *args], input=password, capture_output=True,
                          text=True, timeout=60)


class AuditTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="a3-e2e-")
        self.pg = tempfile.mkdtemp(prefix="a3-pg-")
        self.port = str(30000 + os.getpid() % 20000)
        url = self.pg_start()
        self.config = write_config(self.tmp.name, '[database]\nurl = "%s"\n' % url)

    def tearDown(self):
        subprocess.run([PG_SH, "stop", self.pg], timeout=60)
        subprocess.run(["rm", "-rf", self.pg])
        self.tmp.cleanup()

    def pg_start(self):
        return subprocess.run([PG_SH, "start", self.pg, self.port], check=True, capture_output=True,
                              text=True, timeout=120).stdout.strip()

    def audit(self, *args):
        r = ctl(self.config, "audit", "--json", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [json.loads(l) for l in r.stdout.splitlines()]

    def wait_rows(self, n, *args):
        deadline = time.time() + 30
        rows = []
        while time.time() < deadline:
            rows = self.audit(*args)
            if len(rows) >= n:
                return rows
            time.sleep(0.2)
        self.fail("audit trail has %d rows, expected %d" % (len(rows), n))

    def test_trail_follows_the_daemon_and_survives_a_postgres_outage(self):
        d = Daemon(self.config)
        try:
            d.wait_for("started")
            for who in ("alice", "bob"):
                r = ctl(self.config, "account", "add", who + "@example.test", "--password", "pw")
                self.assertEqual(r.returncode, 0, r.stderr)
            rows = self.wait_rows(2)
            self.assertEqual([r["kind"] for r in rows], ["AccountCreated", "AccountCreated"])
            self.assertEqual(rows[0]["protocol"], "admin")
            only_bob = self.audit("--account", "BOB@example.test")
            self.assertEqual([r["account"] for r in only_bob], ["bob@example.test"])
            self.assertEqual(self.audit("--kind", "AccountDeleted"), [])
            self.assertEqual(len(self.audit("--since", "1h")), 2)
            self.assertEqual(self.audit("--until", "2000-01-01"), [])
            self.assertNotIn("argon2", json.dumps(rows))

            # PostgreSQL goes away: accounts are still created (the mail
            # service never waits for the audit trail)...
            subprocess.run([PG_SH, "stop", self.pg], check=True, timeout=60)
            r = ctl(self.config, "account", "delete", "bob@example.test")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = ctl(self.config, "audit")
            self.assertEqual(r.returncode, 1)
            self.assertIn("cannot connect to PostgreSQL", r.stderr)
            # ...and the trail catches up, exactly once, when it is back.
            self.pg_start()
            rows = self.wait_rows(3)
            self.assertEqual([r["kind"] for r in rows],
                             ["AccountCreated", "AccountCreated", "AccountDeleted"])
            time.sleep(0.5)
            self.assertEqual(len(self.audit()), 3)
            text = ctl(self.config, "audit", "--kind", "AccountDeleted")
            self.assertIn("AccountDeleted", text.stdout)
            self.assertIn("bob@example.test", text.stdout)
        finally:
            self.assertEqual(d.stop(), 0, d.output())

    def test_a_minute_without_postgresql_under_load_loses_and_duplicates_no_row(self):
        """PostgreSQL stopped for 60 s while SMTP clients deliver, and the
        daemon SIGKILLed and restarted in the middle of the outage: once
        PostgreSQL is back, the trail holds every logged event exactly once."""
        smtp = free_port()
        url = self.pg_start()
        config = write_config(self.tmp.name, '[[server.listener]]\nprotocol = "smtp"\n'
                              'bind = "127.0.0.1:%d"\n[database]\nurl = "%s"\n'
                              '[outbound]\nresolvers = ["127.0.0.1@9"]\n' % (smtp, url)
                              + NO_CHECKS)
        accounts = ["a@example.test", "b@example.test"]
        for who in accounts:
            self.assertEqual(ctl(config, "account", "add", who, "--password", "pw").returncode, 0)
        d = Daemon(config)
        d.wait_for("started")
        senders = Senders(smtp, accounts, threads=2, lines=(10, 200), prefix="outage",
                          pause=0.02)
        try:
            time.sleep(2)
            subprocess.run([PG_SH, "stop", self.pg], check=True, timeout=60)
            outage = time.time()
            time.sleep(25)
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
            d.log.close()
            d = Daemon(config)
            d.wait_for("started")
            time.sleep(max(0.0, 60 - (time.time() - outage)))
            self.pg_start()
            time.sleep(3)
        finally:
            senders.stop()
        acked = [token for _, token in senders.acked]
        self.assertGreater(len(acked), 100)
        t = time.time()

        # What the log holds, by position.
        dump = subprocess.run([A3CTL, "--config", config, "log", "dump", "--json"],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(dump.returncode, 0, dump.stderr)
        logged = {}
        for line in dump.stdout.splitlines():
            e = json.loads(line)
            logged["%d:%d" % (e["partition"], e["offset"])] = e["event"]["kind"]
        appended = sorted(p for p, k in logged.items() if k == "MessageAppended")
        self.assertGreaterEqual(len(appended), len(acked))

        deadline = time.time() + 90
        while True:
            r = ctl(config, "audit", "--json", "--kind", "MessageAppended", "--limit", "1000000")
            rows = [json.loads(l) for l in r.stdout.splitlines()] if r.returncode == 0 else []
            if len(rows) >= len(appended) or time.time() > deadline:
                break
            time.sleep(1)
        print("\n  %d messages acknowledged; the trail caught up %.1f s after PostgreSQL came "
              "back" % (len(acked), time.time() - t + 3), file=sys.stderr)
        positions = [r["position"] for r in rows]
        self.assertEqual(len(positions), len(set(positions)), "duplicated audit rows")
        self.assertEqual(sorted(positions), appended, "audit rows lost")
        ids = [r["message_id"] for r in rows]
        for token in acked:
            self.assertEqual(ids.count("<%s@example.net>" % token), 1, token)
        # No other event is there twice either.
        r = ctl(config, "audit", "--json", "--limit", "1000000")
        everything = [json.loads(l)["position"] for l in r.stdout.splitlines()]
        self.assertEqual(len(everything), len(set(everything)))
        self.assertEqual(d.stop(), 0, d.output()[-3000:])

    def test_backup_sets_hold_the_audit_dump_and_the_configuration_with_retention(self):
        """The guide's full and incremental backups: each a3ctl backup is a set
        (the store's incremental backup, pg_dump of the audit tables, the
        configuration), and --keep prunes the old sets."""
        backups = os.path.join(self.tmp.name, "backups")
        d = Daemon(self.config)
        try:
            d.wait_for("started")
            r = ctl(self.config, "account", "add", "ann@example.test", "--password", "pw")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.wait_rows(1)
            for _ in range(3):
                r = ctl(self.config, "backup", backups, "--keep", "2")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("and the audit trail (audit.pgdump)", r.stdout)
            self.assertIn("retention: 1 backup deleted (1)", r.stdout)
            listed = ctl(self.config, "backup", backups, "--list").stdout.splitlines()
            self.assertEqual([l.split()[1] for l in listed], ["2", "3"])
            self.assertTrue(all(l.endswith("config  audit") for l in listed), listed)
            self.assertFalse(os.path.exists(os.path.join(backups, "sets", "1")))
            # The dump is pg_restore's, with the audit rows in it.
            dump = os.path.join(backups, "sets", "3", "audit.pgdump")
            toc = subprocess.run(["pg_restore", "--list", dump], capture_output=True, text=True,
                                 check=True).stdout
            self.assertIn("TABLE DATA public audit_events", toc)
            st = os.stat(os.path.join(backups, "sets", "3", "config.toml"))
            self.assertEqual(st.st_mode & 0o777, 0o600)
            # A database that does not answer: the store's backup is taken and
            # the command fails, saying which part is missing.
            subprocess.run([PG_SH, "stop", self.pg], check=True, timeout=60)
            r = ctl(self.config, "backup", backups)
            self.assertEqual(r.returncode, 1)
            self.assertIn("the store's backup 4 is taken, but pg_dump of the audit trail failed",
                          r.stderr)
            self.pg_start()
        finally:
            self.assertEqual(d.stop(), 0, d.output())
        for bad in (["--keep", "0"], ["--keep-days", "x"]):
            r = ctl(self.config, "backup", backups, *bad)
            self.assertEqual(r.returncode, 2)
            self.assertIn("expects a number from 1 to 100000", r.stderr)

    def test_a_restore_starts_a_timeline_and_the_trail_keeps_the_histories_apart(self):
        """After a3ctl restore, the events of the new history reuse the
        offsets of the discarded ones: both are in the trail, the discarded
        rows marked, the new ones audited (not skipped as already seen)."""
        backups = os.path.join(self.tmp.name, "backups")
        accounts = lambda rows: sorted({r["account"] for r in rows if r["kind"] == "AccountCreated"})
        d = Daemon(self.config)
        try:
            d.wait_for("started")
            self.assertEqual(ctl(self.config, "account", "add", "alice@example.test",
                                 "--password", "pw").returncode, 0)
            cut = ctl(self.config, "log", "end").stdout.strip()  # "0:N"
            self.assertEqual(ctl(self.config, "backup", backups).returncode, 0)
            self.assertEqual(ctl(self.config, "account", "add", "bob@example.test",
                                 "--password", "pw").returncode, 0)
            self.wait_rows(2, "--kind", "AccountCreated")
        finally:
            self.assertEqual(d.stop(), 0, d.output())
        r = ctl(self.config, "restore", backups, "--to-offset", cut)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("timeline 2 begins at %s" % cut, r.stdout)
        d = Daemon(self.config)
        try:
            d.wait_for("started")
            self.assertEqual(ctl(self.config, "account", "add", "carol@example.test",
                                 "--password", "pw").returncode, 0)
            deadline = time.time() + 30
            while accounts(self.audit()) != ["alice@example.test", "carol@example.test"]:
                self.assertLess(time.time(), deadline, self.audit("--all-timelines"))
                time.sleep(0.2)
            everything = self.audit("--all-timelines")
            self.assertEqual(accounts(everything),
                             ["alice@example.test", "bob@example.test", "carol@example.test"])
            bob = [r for r in everything if r["account"] == "bob@example.test"]
            self.assertTrue(all(r["superseded_by"] == 2 and r["timeline"] == 1 for r in bob), bob)
            carol = [r for r in everything if r["account"] == "carol@example.test"]
            self.assertTrue(all(r["timeline"] == 2 and r["superseded_by"] is None for r in carol))
            # Carol's first event took the offset bob's first had.
            self.assertEqual(carol[0]["position"], bob[0]["position"])
            lines = ctl(self.config, "audit", "--timelines").stdout.splitlines()
            self.assertEqual(len(lines), 2, lines)
            self.assertIn('at {"%s": %s}' % tuple(cut.split(":")), lines[1])
        finally:
            self.assertEqual(d.stop(), 0, d.output())

    def test_bad_arguments(self):
        self.assertEqual(ctl(self.config, "audit", "--limit", "x").returncode, 2)
        self.assertEqual(ctl(self.config, "audit", "--bogus").returncode, 2)
        r = ctl(self.config, "audit", "--since", "not a time")
        self.assertEqual(r.returncode, 1)
        self.assertIn("audit query failed", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
