#!/usr/bin/env python3
"""End-to-end: the real a3mailer daemon and a3ctl, as an operator runs them.

Starts the daemon on a fresh data directory, checks that it opens its log,
that a3ctl reads the log while it runs, that SIGTERM and SIGINT stop it
cleanly (exit 0, lock released, restartable), that a bad configuration stops
start-up naming file, key and reason, and that the daemon runs on the Kafka
backend against the standalone mock cluster (tools/a3-mock-kafka).
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BIN = os.environ.get("A3_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../build/tools"))
A3MAILER = os.path.join(BIN, "a3mailer")
A3CTL = os.path.join(BIN, "a3ctl")
MOCK_KAFKA = os.path.join(BIN, "a3-mock-kafka")


def write_config(directory, extra=""):
    path = os.path.join(directory, "a3mailer.toml")
    with open(path, "w") as f:
        f.write('[server]\nhostname = "localhost"\nlocal_domains = ["example.test"]\n'
                'data_dir = "data"\n' + extra)
    return path


class Daemon:
    """A running a3mailer whose log output is collected."""

    def __init__(self, config):
        self.log_path = config + ".log"
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen([A3MAILER, "--config", config], stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_for(self, text, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited early (%s):\n%s" % (self.proc.returncode, self.output()))
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %r:\n%s" % (text, self.output()))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()


class DaemonTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="a3-e2e-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_starts_opens_the_log_and_stops_on_sigterm(self):
        config = write_config(self.dir)
        d = Daemon(config)
        d.wait_for("started: event log local")
        self.assertTrue(os.path.exists(os.path.join(self.dir, "data", "log", "CURRENT")))
        # a3ctl reads the log while the daemon holds it.
        end = subprocess.run([A3CTL, "--config", config, "log", "end"], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(end.returncode, 0, end.stderr)
        self.assertEqual(end.stdout, "0:0\n")
        self.assertEqual(d.stop(signal.SIGTERM), 0, d.output())
        self.assertIn("received SIGTERM, stopping", d.output())
        self.assertIn("stopped", d.output())
        # The lock is released: it starts again on the same data, and SIGINT works too.
        d2 = Daemon(config)
        d2.wait_for("started: event log local")
        self.assertEqual(d2.stop(signal.SIGINT), 0, d2.output())

    def test_second_daemon_on_the_same_data_is_refused(self):
        config = write_config(self.dir)
        d = Daemon(config)
        d.wait_for("started")
        second = subprocess.run([A3MAILER, "--config", config], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(second.returncode, 1)
        self.assertIn("is another a3mailer running", second.stdout + second.stderr)
        self.assertEqual(d.stop(), 0)

    def test_bad_configuration_names_file_key_and_reason(self):
        cases = [
            ("[eventlog]\npartitions = 0\n", "eventlog.partitions: must be between 1 and 1024"),
            ("[smtp]\nmax_recipients = \"many\"\n", "smtp.max_recipients: expected an integer"),
            ("[imap]\nidle_timout_s = 1800\n", "imap.idle_timout_s: unknown key"),
        ]
        for text, reason in cases:
            config = write_config(self.dir, text)
            r = subprocess.run([A3MAILER, "--config", config], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(config + ":", r.stderr)
            self.assertIn(reason, r.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.dir, "data", "log")),
                             "nothing is created when the configuration is bad")
        r = subprocess.run([A3MAILER], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--config FILE is required", r.stderr)
        ok = subprocess.run([A3MAILER, "--config", write_config(self.dir), "--check-config"],
                            capture_output=True, text=True, timeout=30)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        # The configuration in force, defaults included.
        self.assertIn(": OK; the configuration in force:", ok.stdout)
        self.assertIn('hostname = "localhost"', ok.stdout)
        self.assertIn("max_recipients = 100", ok.stdout)

    def test_a_missing_trust_anchor_stops_the_start(self):
        # libunbound would only read it at the first lookup (every one of
        # which would then fail): checked at start, with its name.
        config = write_config(self.dir, '[outbound]\nresolvers = ["127.0.0.1@9"]\n'
                                        'dnssec_trust_anchors = ["nosuch/root.key"]\n')
        r = subprocess.run([A3MAILER, "--config", config], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("trust anchor %s/nosuch/root.key: cannot read it" % self.dir,
                      r.stdout + r.stderr)

    def test_json_logs_are_one_object_per_line(self):
        import json
        config = write_config(self.dir, '[logging]\nformat = "json"\n')
        d = Daemon(config)
        d.wait_for('"msg":"a3mailer')
        self.assertEqual(d.stop(), 0)
        lines = [l for l in d.output().splitlines() if l.strip()]
        self.assertGreaterEqual(len(lines), 3)
        for line in lines:
            obj = json.loads(line)
            self.assertIn(obj["level"], ("info", "warning", "error", "critical", "debug"))
            self.assertIn("time", obj)

    def test_kafka_backend_with_the_standalone_mock_cluster(self):
        mock = subprocess.Popen([MOCK_KAFKA, "--brokers", "3", "--partitions", "2"],
                                stdout=subprocess.PIPE, text=True)
        try:
            line = mock.stdout.readline()
            self.assertTrue(line.startswith("BOOTSTRAP "), line)
            brokers = line.split()[1]
            self.assertTrue(all(b.startswith("127.0.0.1:") or b.startswith("localhost:")
                                for b in brokers.split(",")), brokers)
            config = write_config(self.dir, '[eventlog]\nbackend = "kafka"\npartitions = 2\n'
                                            '[eventlog.kafka]\nbrokers = "%s"\n' % brokers)
            d = Daemon(config)
            d.wait_for("started: event log kafka (2 partitions")
            end = subprocess.run([A3CTL, "--config", config, "log", "end"], capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(end.returncode, 0, end.stderr)
            self.assertEqual(end.stdout, "0:0\n1:0\n")
            self.assertEqual(d.stop(), 0, d.output())
            # A mismatched partition count is refused with the reason.
            config = write_config(self.dir, '[eventlog]\nbackend = "kafka"\npartitions = 3\n'
                                            '[eventlog.kafka]\nbrokers = "%s"\n' % brokers)
            r = subprocess.run([A3MAILER, "--config", config], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 1)
            self.assertIn("has 2 partitions but eventlog.partitions = 3", r.stdout + r.stderr)
        finally:
            mock.terminate()
            self.assertEqual(mock.wait(30), 0)
            mock.stdout.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
