#!/usr/bin/env python3
"""End-to-end: the daemon as the deployment guide runs it.

The guide's own config.toml (tests/guide/) checked and run, with ports
below 1024 bound by an unprivileged user holding CAP_NET_BIND_SERVICE
alone; SIGHUP reloading certificates, limits, blocked networks and the log
file (a broken certificate refused, the old one kept); the monitoring
listener's /metrics and /healthz; sessions per account; the graceful stop
(421 / BYE to waiting clients); size-rotated log files.
"""
import imaplib
import json
import os
import poplib
import pwd
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from mailtest import ctl, free_port, make_cert, tls_client
from test_daemon import A3MAILER, Daemon, write_config

SOURCE = os.environ.get("A3_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
GUIDE = os.path.join(SOURCE, "tests", "guide")


def http_get(port, path):
    """(status, headers, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def metric(text, name, **labels):
    """The value of one sample of the Prometheus text `text`, or None."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, value = line.rsplit(" ", 1)
        got = series[len(name):]
        if got == ("{%s}" % want if want else "") or (
                want and got.startswith("{") and all(
                    ('%s="%s"' % kv) in got for kv in labels.items())):
            return float(value)
    return None


def read(path):
    with open(path) as f:
        return f.read()


def wait_until(predicate, what, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def peer_certificate(port, source=None):
    """The DER certificate served on the implicit-TLS `port`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0) if source else None) as s:
        with tls_client().wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


class GuideConfigurationTest(unittest.TestCase):
    """The guide's file, as it stands."""

    def test_check_config_accepts_the_guides_files_with_warnings_and_masks_secrets(self):
        for name in ("config.toml", "hardened.toml"):
            r = subprocess.run([A3MAILER, "--config", os.path.join(GUIDE, name),
                                "--check-config"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(": OK; the configuration in force:", r.stdout)
            # The secret is masked; the keys that cannot apply are named.
            self.assertNotIn("your_secure_password", r.stdout + r.stderr)
            self.assertIn('password = "********"', r.stdout)
            self.assertIn("cache (type, host, port, database, pool_size, timeout): ignored",
                          r.stderr)
            self.assertIn('bind = "0.0.0.0:25"', r.stdout)
            self.assertIn('protocol = "submission"', r.stdout)

    def test_a_bad_guide_key_names_file_line_key_and_reason(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(GUIDE, "config.toml")) as f:
                text = f.read()
            path = os.path.join(d, "config.toml")
            with open(path, "w") as f:
                f.write(text.replace("prometheus_port = 9090", "prometheus_port = \"ninety\"")
                        .replace("max_files = 10", "max_files = 0"))
            r = subprocess.run([A3MAILER, "--config", path, "--check-config"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2)
            self.assertIn("config.toml:59:19: monitoring.prometheus_port: expected an integer",
                          r.stderr)
            self.assertIn("logging.max_files: must be between 1 and 10000 (got 0)", r.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to drop to an unprivileged user")
    def test_the_guides_file_runs_on_its_ports_with_cap_net_bind_service_alone(self):
        """Ports 25, 587, 993 and 995 as in the guide, on a loopback address
        of their own, by `nobody` with CAP_NET_BIND_SERVICE and no other
        privilege; the guide's environment variables give the certificate,
        the metrics port and the audit switch; JSON logs go to its output."""
        tmp = tempfile.mkdtemp(prefix="a3-guide-")
        try:
            make_cert(tmp)
            host = "127.0.0.%d" % (100 + os.getpid() % 100)
            log = os.path.join(tmp, "log", "a3mailer.log")
            with open(os.path.join(GUIDE, "config.toml")) as f:
                text = f.read()
            text = (text.replace('"0.0.0.0:', '"%s:' % host)
                    .replace("/var/log/stalwart/stalwart.log", log)
                    .replace('hostname = "mail.example.com"',
                             'hostname = "mail.example.com"\nlocal_domains = ["example.test"]'))
            config = os.path.join(tmp, "config.toml")
            with open(config, "w") as f:
                f.write(text)
            r = ctl(config, "account", "add", "ann@example.test", "--password", "pw")
            self.assertEqual(r.returncode, 0, r.stderr)
            nobody = pwd.getpwnam("nobody")
            for root, dirs, files in os.walk(tmp):
                for name in dirs + files + [""]:
                    os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)
            metrics_port = free_port()
            env = dict(os.environ, STALWART_TLS_CERT=os.path.join(tmp, "cert.pem"),
                       STALWART_TLS_KEY=os.path.join(tmp, "key.pem"),
                       STALWART_METRICS_PORT=str(metrics_port), STALWART_AUDIT_ENABLED="false",
                       A3_RELAY_PASSWORD="")
            out = open(os.path.join(tmp, "stderr"), "w+")
            proc = subprocess.Popen(
                ["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
                 "--clear-groups", "--inh-caps=-all,+net_bind_service",
                 "--ambient-caps=-all,+net_bind_service", "--bounding-set=-all,+net_bind_service",
                 A3MAILER, "--config", config], stdout=out, stderr=subprocess.STDOUT, env=env)
            try:
                wait_until(lambda: os.path.exists(log) and "started: event log" in read(log),
                           "the daemon to start:\n" + read(out.name))
                with smtplib.SMTP(host, 25, timeout=10) as s:
                    self.assertEqual(s.ehlo()[0], 250)
                    s.sendmail("x@example.net", ["ann@example.test"], "Subject: guide\r\n\r\nhi\r\n")
                with smtplib.SMTP(host, 587, timeout=10) as s:
                    s.starttls(context=tls_client())
                    s.ehlo()
                    self.assertIn("auth", s.esmtp_features)
                imap = imaplib.IMAP4_SSL(host, 993, ssl_context=tls_client(), timeout=10)
                imap.login("ann@example.test", "pw")
                wait_until(lambda: imap.select("INBOX")[1][0] == b"1", "the message in INBOX")
                imap.logout()
                pop = poplib.POP3_SSL(host, 995, context=tls_client(), timeout=10)
                pop.user("ann@example.test")
                pop.pass_("pw")
                self.assertEqual(pop.stat()[0], 1)
                pop.quit()
                status, _, body = http_get(metrics_port, "/metrics")
                self.assertEqual(status, 200)
                self.assertEqual(metric(body, "a3_smtp_messages_total", result="accepted",
                                        reason=""), 1)
                # The process holds no capability but the one it was given.
                with open("/proc/%d/status" % proc.pid) as f:
                    status_text = f.read()
                self.assertIn("Uid:\t%d" % nobody.pw_uid, status_text)
                eff = [l for l in status_text.splitlines() if l.startswith("CapEff:")][0]
                self.assertEqual(int(eff.split()[1], 16), 1 << 10)  # CAP_NET_BIND_SERVICE
            finally:
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(30), 0, read(out.name))
                out.close()
            # The guide's JSON lines, in its output file; never the password.
            with open(log) as f:
                lines = [json.loads(l) for l in f if l.strip()]
            self.assertTrue(any("started: event log" in l["msg"] for l in lines))
            self.assertTrue(all(l["level"] in ("info", "warning", "error", "debug")
                                for l in lines))
            self.assertNotIn("your_secure_password", json.dumps(lines))
            self.assertTrue(any("cache (type" in l["msg"] for l in lines))
        finally:
            shutil.rmtree(tmp)


class LifecycleTest(unittest.TestCase):
    """One daemon per test: reloads change what it runs with."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="a3-ops-")
        self.dir = self.tmp.name
        make_cert(self.dir)
        self.smtp, self.imaps, self.metrics = free_port(), free_port(), free_port()
        self.daemon = None

    def tearDown(self):
        if self.daemon and self.daemon.proc.poll() is None:
            self.daemon.stop()
        self.tmp.cleanup()

    def start(self, extra="", security=""):
        self.extra, self.security = extra, security
        self.config = write_config(self.dir, self.sections())
        for who in ("ann", "bob"):
            ctl(self.config, "account", "add", who + "@example.test", "--password", "pw")
        self.daemon = Daemon(self.config)
        self.wait_for_log("started: event log")

    def log_text(self):
        """What the daemon logged: its output, or its log file."""
        if 'output = "a3.log"' in self.extra:
            path = os.path.join(self.dir, "a3.log")
            return read(path) if os.path.exists(path) else ""
        return self.daemon.output()

    def wait_for_log(self, text):
        wait_until(lambda: text in self.log_text() or self.daemon.proc.poll() is not None,
                   "%r in the log" % text)
        self.assertIn(text, self.log_text(), self.daemon.output())

    def sections(self):
        return ('[[server.listener]]\nprotocol = "smtp"\nbind = "127.0.0.1:%d"\n'
                '[[server.listener]]\nprotocol = "imaps"\nbind = "127.0.0.1:%d"\n'
                '[tls]\ncertificate = "cert.pem"\nprivate_key = "key.pem"\n'
                '[security]\nauth_failures_before_delay = 100\n%s'
                '[monitoring]\nenabled = true\nbind = "127.0.0.1:%d"\nhealth_check_interval = 1\n'
                '[database]\nenabled = false\n'
                '[smtp]\ncheck_spf = false\ncheck_dkim = false\ncheck_dmarc = false\n'
                '[outbound]\nresolvers = ["127.0.0.1@9"]\n%s'
                % (self.smtp, self.imaps, self.security, self.metrics, self.extra))

    def rewrite(self, security=None, extra=None):
        if security is not None:
            self.security = security
        if extra is not None:
            self.extra = extra
        with open(self.config, "w") as f:
            f.write('[server]\nhostname = "localhost"\nlocal_domains = ["example.test"]\n'
                    'data_dir = "data"\n' + self.sections())

    def reload(self, expect):
        before = self.log_text().count(expect)
        self.daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.log_text().count(expect) > before,
                   "%r after SIGHUP:\n%s" % (expect, self.log_text()))

    def metrics_text(self):
        try:
            status, headers, body = http_get(self.metrics, "/metrics")
        except OSError as e:
            raise AssertionError("no /metrics (%s); the daemon %s:\n%s\n%s" % (
                e, "exited with %s" % self.daemon.proc.returncode
                if self.daemon.proc.poll() is not None else "runs",
                self.daemon.output()[-3000:], self.log_text()[-3000:]))
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        return body

    def test_sighup_replaces_the_certificate_and_keeps_open_connections(self):
        self.start()
        old = peer_certificate(self.imaps)
        held = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=tls_client(), timeout=10)
        held.login("ann@example.test", "pw")
        # certbot renew: a new certificate in place, then `systemctl reload`.
        make_cert(self.dir)
        self.reload("reload: ")
        self.assertIn("applied", self.daemon.output())
        new = peer_certificate(self.imaps)
        self.assertNotEqual(old, new)
        # The connection from before the reload goes on undisturbed.
        self.assertEqual(held.noop()[0], "OK")
        self.assertEqual(held.select("INBOX")[0], "OK")
        held.logout()
        text = self.metrics_text()
        self.assertEqual(metric(text, "a3_config_reloads_total", result="success"), 1)
        self.assertEqual(metric(text, "a3_config_last_reload_successful"), 1)
        self.assertGreater(metric(text, "a3_tls_certificate_expiry_timestamp_seconds"),
                           time.time())

        # A broken certificate: refused, said so, and the last good one served.
        with open(os.path.join(self.dir, "cert.pem"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        self.reload("reload refused")
        self.assertIn("tls.certificate", self.daemon.output().split("reload refused")[-1])
        self.assertEqual(peer_certificate(self.imaps), new)
        text = self.metrics_text()
        self.assertEqual(metric(text, "a3_config_reloads_total", result="failure"), 1)
        self.assertEqual(metric(text, "a3_config_last_reload_successful"), 0)
        self.assertEqual(self.daemon.stop(), 0, self.daemon.output())

    def test_sighup_applies_blocked_networks_and_a_bad_file_is_refused(self):
        self.start()
        # Before: 127.0.0.77 is greeted.
        with socket.create_connection(("127.0.0.1", self.smtp), timeout=10,
                                      source_address=("127.0.0.77", 0)) as s:
            self.assertTrue(s.recv(100).startswith(b"220 "))
        self.rewrite(security='blocked_ips = ["127.0.0.77/32", "2001:db8::/32"]\n')
        self.reload("reload: ")
        # After: closed at accept, before any greeting or TLS, on every listener.
        for port in (self.smtp, self.imaps):
            with socket.create_connection(("127.0.0.1", port), timeout=10,
                                          source_address=("127.0.0.77", 0)) as s:
                self.assertEqual(s.recv(100), b"")
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=10) as s:
            self.assertEqual(s.noop()[0], 250)
        text = self.metrics_text()
        self.assertGreaterEqual(metric(text, "a3_connections_total", protocol="smtp",
                                       result="refused_blocked"), 1)
        # A broken file keeps what is in force, and says why.
        self.rewrite(security='blocked_ips = ["127.0.0.300/8"]\n')
        self.reload("reload refused")
        self.assertIn('security.blocked_ips: "127.0.0.300/8" is not an address or CIDR network',
                      self.daemon.output())
        with socket.create_connection(("127.0.0.1", self.smtp), timeout=10,
                                      source_address=("127.0.0.77", 0)) as s:
            self.assertEqual(s.recv(100), b"")
        self.assertEqual(self.daemon.stop(), 0, self.daemon.output())

    def test_signals_never_reach_a_thread_that_would_die_of_them(self):
        # Every thread blocks SIGHUP and SIGTERM, the log's flusher too: a
        # burst of reloads leaves the daemon running (it was once killed by
        # a SIGHUP taken by that thread).
        self.start()
        for _ in range(200):  # some arrive while the main thread reloads
            self.daemon.proc.send_signal(signal.SIGHUP)
            time.sleep(0.002)
        time.sleep(1)
        self.assertIsNone(self.daemon.proc.poll(), self.daemon.output())
        self.assertEqual(self.daemon.stop(), 0, self.daemon.output())

    def test_sighup_reopens_the_log_file_for_logrotate(self):
        self.start(extra='[logging]\noutput = "a3.log"\n')
        log = os.path.join(self.dir, "a3.log")
        wait_until(lambda: os.path.exists(log), "the log file")
        os.rename(log, log + ".1")  # what logrotate does
        self.reload("reload: ")
        wait_until(lambda: os.path.exists(log) and "applied" in read(log),
                   "the reopened log file")
        self.assertNotIn("applied", read(log + ".1"))
        self.assertEqual(self.daemon.stop(), 0)

    def test_log_files_rotate_at_max_size(self):
        self.start(extra='[logging]\noutput = "a3.log"\nmax_size = "4KB"\nmax_files = 2\n')
        # Each reload logs a line of about 100 bytes.
        for i in range(100):
            self.daemon.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: metric(self.metrics_text(), "a3_config_reloads_total",
                                      result="success") == i + 1, "reload %d" % (i + 1))
        self.assertEqual(self.daemon.stop(), 0)
        names = sorted(n for n in os.listdir(self.dir) if n.startswith("a3."))
        self.assertEqual(names, ["a3.1.log", "a3.2.log", "a3.log"])
        for n in names:
            self.assertLessEqual(os.path.getsize(os.path.join(self.dir, n)), 4096 + 1024)

    def test_json_log_lines_name_component_session_ip_and_account_never_secrets(self):
        self.start(extra='[logging]\noutput = "a3.log"\nformat = "json"\nlevel = "debug"\n')
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=tls_client(), timeout=10)
        self.assertRaises(imaplib.IMAP4.error, imap.login, "ann@example.test", "s3cret-never-logged")
        imap.logout()
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=10) as s:
            s.sendmail("x@example.net", ["ann@example.test"],
                       "Subject: private\r\n\r\nBODY-MARKER-never-logged\r\n")
        self.wait_for_log("login refused")
        self.assertEqual(self.daemon.stop(), 0)
        lines = [json.loads(l) for l in self.log_text().splitlines() if l.strip()]
        login = [l for l in lines if l["msg"] == "login refused (LOGIN)"]
        self.assertEqual(len(login), 1, lines)
        self.assertEqual(login[0]["component"], "imap")
        self.assertEqual(login[0]["remote_ip"], "127.0.0.1")
        self.assertEqual(login[0]["account"], "ann@example.test")
        self.assertTrue(login[0]["session"].startswith("i"), login[0])
        self.assertEqual(login[0]["level"], "debug")
        # Lines without fields still name their component.
        self.assertTrue(any(l.get("component") == "monitoring" for l in lines))
        text = self.log_text()
        self.assertNotIn("s3cret-never-logged", text)
        self.assertNotIn("BODY-MARKER-never-logged", text)

    def test_metrics_and_health(self):
        self.start()
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=10) as s:
            s.sendmail("x@example.net", ["ann@example.test"], "Subject: m\r\n\r\nhi\r\n")
            self.assertEqual(s.docmd("RCPT TO:<nobody@example.test>")[0], 503)
            self.assertEqual(s.docmd("FROB")[0], 500)
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=tls_client(), timeout=10)
        self.assertRaises(imaplib.IMAP4.error, imap.login, "ann@example.test", "wrong")
        imap.logout()
        wait_until(lambda: metric(self.metrics_text(), "a3_eventlog_end_offset",
                                  partition="0") not in (None, 0.0), "the log's end offset")
        text = self.metrics_text()
        self.assertEqual(metric(text, "a3_smtp_messages_total", result="accepted", reason=""), 1)
        self.assertEqual(metric(text, "stalwart_emails_processed_total"), 1)
        self.assertEqual(metric(text, "a3_commands_total", protocol="smtp", command="DATA",
                                result="3xx"), 1)
        self.assertEqual(metric(text, "a3_commands_total", protocol="smtp", command="RCPT",
                                result="5xx"), 1)
        # A command the server does not know is "unknown", never the client's word.
        self.assertEqual(metric(text, "a3_commands_total", protocol="smtp", command="unknown",
                                result="5xx"), 1)
        self.assertNotIn("FROB", text)
        self.assertEqual(metric(text, "a3_auth_attempts_total", protocol="imap",
                                result="failure"), 1)
        self.assertGreaterEqual(metric(text, "a3_command_duration_seconds_count", protocol="imap",
                                       command="LOGIN"), 1)
        self.assertGreaterEqual(metric(text, "a3_eventlog_append_duration_seconds_count"), 2)
        self.assertEqual(metric(text, "a3_connections_open", protocol="smtp"), 0)
        self.assertGreater(metric(text, "a3_process_resident_memory_bytes"), 1e6)
        self.assertGreater(metric(text, "a3_process_open_fds"), 5)
        self.assertIsNotNone(metric(text, "a3_projector_lag_events", projector="view",
                                    partition="0"))
        if shutil.which("promtool"):
            r = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                               capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Health: live, and ready with what was checked.
        status, headers, body = http_get(self.metrics, "/healthz/live")
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        wait_until(lambda: http_get(self.metrics, "/healthz/ready")[0] == 200, "readiness")
        ready = json.loads(http_get(self.metrics, "/healthz/ready")[2])
        self.assertTrue(ready["ready"])
        self.assertTrue(ready["checks"]["log"]["ok"])
        self.assertTrue(ready["checks"]["view"]["ok"])
        self.assertEqual(http_get(self.metrics, "/nothing")[0], 404)
        # A malformed request gets 400 and the listener goes on.
        with socket.create_connection(("127.0.0.1", self.metrics), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"y" * 20000 + b"\r\n\r\n")
            self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 400"))
        self.assertEqual(http_get(self.metrics, "/healthz/live")[0], 200)
        self.assertEqual(self.daemon.stop(), 0)

    def test_a3ctl_health_does_what_the_guides_script_does(self):
        self.start()
        r = ctl(self.config, "health")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout.decode()
        for line in ("OK: a3mailer is running", "OK: log: takes appends",
                     "OK: view: 0 events behind the log, at most 10000 (ok)",
                     "OK: smtp on 127.0.0.1:%d is listening" % self.smtp,
                     "OK: imaps on 127.0.0.1:%d is listening" % self.imaps,
                     "OK: monitoring on 127.0.0.1:%d is listening" % self.metrics,
                     "OK: All health checks passed"):
            self.assertIn(line, out)
        self.assertEqual(self.daemon.stop(), 0)
        r = ctl(self.config, "health")
        self.assertEqual(r.returncode, 1)
        out = r.stdout.decode()
        self.assertIn("ERROR: a3mailer is not running", out)
        self.assertIn("ERROR: smtp on 127.0.0.1:%d does not answer" % self.smtp, out)
        self.assertNotIn("All health checks passed", out)

    def test_readiness_fails_while_postgresql_does_not_answer(self):
        dead = free_port()
        self.start(extra='')
        self.daemon.stop()
        self.rewrite(extra='')
        with open(self.config) as f:
            text = f.read().replace("[database]\nenabled = false\n",
                                    '[database]\nhost = "127.0.0.1"\nport = %d\n'
                                    'database = "a3"\nusername = "a3"\ntimeout = 2\n' % dead)
        with open(self.config, "w") as f:
            f.write(text)
        self.daemon = Daemon(self.config)
        self.daemon.wait_for("started: event log")
        # The mail service runs; readiness says the audit trail cannot follow.
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=10) as s:
            s.sendmail("x@example.net", ["ann@example.test"], "Subject: r\r\n\r\nhi\r\n")
        wait_until(lambda: http_get(self.metrics, "/healthz/ready")[0] == 503, "503")
        ready = json.loads(http_get(self.metrics, "/healthz/ready")[2])
        self.assertFalse(ready["ready"])
        self.assertFalse(ready["checks"]["database"]["ok"])
        self.assertEqual(ready["checks"]["database"]["detail"], "PostgreSQL does not answer")
        self.assertTrue(ready["checks"]["log"]["ok"])
        r = ctl(self.config, "health")
        self.assertEqual(r.returncode, 1)
        self.assertIn("ERROR: PostgreSQL does not answer", r.stdout.decode())
        self.assertIn("OK: a3mailer is running", r.stdout.decode())
        self.assertEqual(self.daemon.stop(), 0)

    def test_sessions_per_account_are_limited(self):
        self.start(extra="[imap]\nmax_connections_per_user = 2\n")

        def login(user):
            c = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=tls_client(), timeout=10)
            try:
                c.login(user, "pw")
            except imaplib.IMAP4.error as e:
                c.shutdown()
                return str(e)
            return c

        first, second = login("ann@example.test"), login("ann@example.test")
        self.assertIsInstance(second, imaplib.IMAP4_SSL)
        third = login("ann@example.test")
        self.assertIn("[LIMIT] Too many sessions for this account", third)
        other = login("bob@example.test")  # another account is not affected
        self.assertIsInstance(other, imaplib.IMAP4_SSL)
        first.logout()
        # The slot is free once the server has ended that session.
        again = []
        wait_until(lambda: again.append(login("ann@example.test")) or
                   not isinstance(again[-1], str), "a free slot")
        again[-1].logout()
        second.logout()
        other.logout()
        self.assertEqual(self.daemon.stop(), 0)

    def test_sigterm_says_goodbye_to_waiting_clients(self):
        self.start()
        smtp = socket.create_connection(("127.0.0.1", self.smtp), timeout=10)
        self.assertTrue(smtp.recv(100).startswith(b"220 "))
        # A client in the middle of a message finishes it: 250, then 421.
        sending = smtplib.SMTP("127.0.0.1", self.smtp, timeout=10)
        sending.ehlo()
        sending.mail("x@example.net")
        sending.rcpt("bob@example.test")
        self.assertEqual(sending.docmd("DATA")[0], 354)
        sending.send(b"Subject: half\r\n\r\nfirst half\r\n")
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=tls_client(), timeout=10)
        imap.login("ann@example.test", "pw")
        imap.select("INBOX")
        self.daemon.proc.send_signal(signal.SIGTERM)
        self.assertEqual(smtp.recv(100), b"421 4.3.2 Server shutting down\r\n")
        self.assertEqual(imap.readline(), b"* BYE Server shutting down\r\n")
        sending.send(b"second half\r\n.\r\n")
        self.assertEqual(sending.getreply()[0], 250)
        self.assertEqual(sending.getreply(), (421, b"4.3.2 Server shutting down"))
        sending.close()
        self.assertEqual(self.daemon.proc.wait(30), 0)
        smtp.close()
        self.assertIn("stopped", self.daemon.output())

    def test_tls_protocols_and_ciphers_are_what_the_file_says(self):
        self.start(extra="")
        self.daemon.stop()
        with open(self.config) as f:
            text = f.read().replace('private_key = "key.pem"\n',
                                    'private-key = "key.pem"\nprotocols = ["TLSv1.3"]\n')
        with open(self.config, "w") as f:
            f.write(text)
        self.daemon = Daemon(self.config)
        self.daemon.wait_for("started: event log")
        only12 = tls_client()
        only12.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", self.imaps), timeout=10) as s:
            with self.assertRaises(ssl.SSLError):
                only12.wrap_socket(s).recv(10)
        with socket.create_connection(("127.0.0.1", self.imaps), timeout=10) as s:
            with tls_client().wrap_socket(s) as t:
                self.assertEqual(t.version(), "TLSv1.3")
        self.assertEqual(self.daemon.stop(), 0)


class RecoveryToolsOnBlobFilesTest(unittest.TestCase):
    """a3ctl verify and log dump on a store whose bodies are in RocksDB blob
    files (RocksDB 7.8's secondary instances crashed reading them: SIGSEGV),
    with the daemon running and stopped."""

    def test_verify_and_log_dump_read_blob_files(self):
        tmp = tempfile.TemporaryDirectory(prefix="a3-blobs-")
        port = free_port()
        config = write_config(tmp.name, '[[server.listener]]\nprotocol = "smtp"\n'
                                        'bind = "127.0.0.1:%d"\n[database]\nenabled = false\n'
                                        '[smtp]\ncheck_spf = false\ncheck_dkim = false\n'
                                        'check_dmarc = false\n'
                                        '[outbound]\nresolvers = ["127.0.0.1@9"]\n' % port)
        self.assertEqual(ctl(config, "account", "add", "u@example.test", "--password",
                             "pw").returncode, 0)
        d = Daemon(config)
        try:
            d.wait_for("started: event log")
            # 90 MB of bodies: past the 64 MB memtables, so they are flushed
            # into blob files.
            body = ("y" * 76 + "\r\n") * (1 << 17)  # 10 MiB
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                for i in range(9):
                    s.sendmail("x@example.net", ["u@example.test"], "Subject: %d\r\n\r\n" % i + body)
            view = os.path.join(tmp.name, "data", "view")
            wait_until(lambda: any(n.endswith(".blob") for n in os.listdir(view)),
                       "blob files in the view", timeout=60)
            r = ctl(config, "verify")
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            self.assertIn(b"OK: the view is exactly what its log says", r.stdout)
            r = ctl(config, "log", "dump")
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            self.assertGreaterEqual(r.stdout.count(b"MessageAppended"), 9)
            # A body read back through a3ctl while the daemon runs.
            r = ctl(config, "account", "message", "u@example.test", "3")
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            self.assertTrue(r.stdout.endswith(body.encode()), len(r.stdout))
        finally:
            self.assertEqual(d.stop(), 0, d.output())
        r = ctl(config, "verify")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        tmp.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
