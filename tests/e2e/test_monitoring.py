#!/usr/bin/env python3
"""End-to-end: the monitoring files of packaging/monitoring/ against the
real daemon and Debian's Prometheus.

promtool checks the alert rules and runs their unit tests; every metric
the dashboard and the rules name is one the daemon exports; Prometheus,
started on loopback with the packaged prometheus.yml, scrapes the daemon
and answers a query for its readiness through its HTTP API.
"""
import json
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

from mailtest import ctl, free_port, make_cert
from test_daemon import Daemon, write_config
from test_operations import http_get, metric, wait_until

SOURCE = os.environ.get("A3_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
FILES = os.path.join(SOURCE, "packaging", "monitoring")


def names_in(text):
    """The metric names an expression text mentions."""
    return set(re.findall(r"\b((?:a3|stalwart)_[a-z0-9_]+)", text))


class MonitoringTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="a3-mon-")
        make_cert(cls.tmp.name)
        cls.smtp, cls.metrics = free_port(), free_port()
        cls.config = write_config(
            cls.tmp.name,
            '[[server.listener]]\nprotocol = "smtp"\nbind = "127.0.0.1:%d"\n'
            '[tls]\ncertificate = "cert.pem"\nprivate_key = "key.pem"\n'
            '[monitoring]\nenabled = true\nbind = "127.0.0.1:%d"\nhealth_check_interval = 1\n'
            '[database]\nenabled = false\n'
            '[smtp]\ncheck_spf = false\ncheck_dkim = false\ncheck_dmarc = false\n'
            '[outbound]\nresolvers = ["127.0.0.1@9"]\n' % (cls.smtp, cls.metrics))
        ctl(cls.config, "account", "add", "someone@example.test", "--password", "pw")
        cls.daemon = Daemon(cls.config)
        cls.daemon.wait_for("started: event log")
        with smtplib.SMTP("127.0.0.1", cls.smtp, timeout=10) as s:
            s.sendmail("x@example.net", ["someone@example.test"], "Subject: m\r\n\r\nhi\r\n")

    @classmethod
    def tearDownClass(cls):
        assert cls.daemon.stop() == 0, cls.daemon.output()
        cls.tmp.cleanup()

    def scrape(self):
        # The sampler's gauges appear after its first round.
        wait_until(lambda: "a3_ready" in http_get(self.metrics, "/metrics")[2], "a3_ready")
        return http_get(self.metrics, "/metrics")[2]

    def test_promtool_checks_the_rules_and_runs_their_tests(self):
        r = subprocess.run(["promtool", "check", "rules", "alerting_rules.yml"], cwd=FILES,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: 14 rules found", r.stdout)
        r = subprocess.run(["promtool", "test", "rules", "alerting_rules_test.yml"], cwd=FILES,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run(["promtool", "check", "metrics"], input=self.scrape(), text=True,
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_the_dashboard_and_the_rules_name_only_exported_metrics(self):
        scraped = self.scrape()
        with open(os.path.join(FILES, "grafana-dashboard.json")) as f:
            dashboard = json.load(f)
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        self.assertIn("stalwart_cpu_usage_percent", exprs)  # the guide's panels, as written
        self.assertIn("rate(stalwart_emails_processed_total[5m])", exprs)
        with open(os.path.join(FILES, "alerting_rules.yml")) as f:
            rules = " ".join(l for l in f if l.strip().startswith("expr:"))
        wanted = names_in(" ".join(exprs)) | names_in(rules)
        # Series that only exist with PostgreSQL or after an error are
        # still exported here with a label of their own or at zero.
        missing = sorted(n for n in wanted
                         if not re.search(r"^%s(_bucket|_count|_sum)?[{ ]" % n, scraped, re.M))
        self.assertEqual(missing, [], scraped)

    def test_prometheus_scrapes_the_daemon_and_answers_through_its_api(self):
        prometheus = shutil.which("prometheus")
        self.assertIsNotNone(prometheus, "Debian's prometheus is not installed (tools/dev setup)")
        work = tempfile.mkdtemp(prefix="a3-prom-")
        try:
            with open(os.path.join(FILES, "prometheus.yml")) as f:
                config = f.read()
            # The packaged file, pointed at this daemon, scraping every second.
            config = (config.replace("localhost:9190", "127.0.0.1:%d" % self.metrics)
                      .replace("/usr/share/a3mailer/monitoring/alerting_rules.yml",
                               os.path.join(FILES, "alerting_rules.yml"))
                      .replace("scrape_interval: 30s", "scrape_interval: 1s")
                      .replace("evaluation_interval: 15s", "evaluation_interval: 1s"))
            path = os.path.join(work, "prometheus.yml")
            with open(path, "w") as f:
                f.write(config)
            r = subprocess.run(["promtool", "check", "config", path], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            port = free_port()
            log = open(os.path.join(work, "log"), "w+")
            proc = subprocess.Popen([prometheus, "--config.file=" + path,
                                     "--storage.tsdb.path=" + os.path.join(work, "data"),
                                     "--web.listen-address=127.0.0.1:%d" % port],
                                    stdout=log, stderr=subprocess.STDOUT)
            try:
                def query(q):
                    url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (
                        port, urllib.parse.quote(q))
                    try:
                        with urllib.request.urlopen(url, timeout=5) as resp:
                            return json.load(resp)["data"]["result"]
                    except OSError:
                        return []

                wait_until(lambda: query("a3_ready") and query("a3_ready")[0]["value"][1] == "1",
                           "Prometheus to read a3_ready = 1", timeout=60)
                up = query('up{job="stalwart-mail"}')
                self.assertEqual(up[0]["value"][1], "1")
                accepted = query('a3_smtp_messages_total{result="accepted"}')
                self.assertEqual(accepted[0]["value"][1], "1")
                def rule_states():
                    with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/rules" % port,
                                                timeout=5) as resp:
                        groups = json.load(resp)["data"]["groups"]
                    return {r["name"]: r["state"] for g in groups for r in g["rules"]}

                wait_until(lambda: rule_states()["A3CertificateExpiresSoon"] == "pending",
                           "the rules to be evaluated", timeout=30)
                names = set(rule_states())
                self.assertIn("ServiceDown", names)
                self.assertIn("A3ProjectorLagging", names)
                # Nothing fires on a healthy daemon (the test certificate,
                # valid for two days, makes A3CertificateExpiresSoon pending).
                states = rule_states()
                self.assertNotIn("firing", states.values(), states)
                self.assertEqual(states["A3CertificateExpiresSoon"], "pending", states)
            finally:
                proc.terminate()
                proc.wait(30)
                log.close()
        finally:
            shutil.rmtree(work)


if __name__ == "__main__":
    unittest.main(verbosity=2)
