"""Helpers the end-to-end tests share: ports, TLS for clients, a3ctl, a
certificate for the daemon, and SMTP delivery."""
import os
import smtplib
import socket
import ssl
import subprocess
import random
import tempfile
import threading
import time

from test_daemon import A3CTL


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls_client():
    """A client context that accepts the tests' self-signed certificates."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def ctl(config, *args):
    return subprocess.run([A3CTL, "--config", config, *args], capture_output=True, timeout=60)


def make_cert(directory):
    """cert.pem and key.pem in `directory`, for localhost and 127.0.0.1."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", directory + "/key.pem",
                    "-out", directory + "/cert.pem", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)


def inbox_count(config, who):
    out = ctl(config, "account", "show", who).stdout.decode()
    for line in out.splitlines():
        if line.strip().startswith("INBOX"):
            return int(line.split("messages=")[1].split()[0])
    return 0


def deliver(port, to, body, sender="sender@example.net", config=None):
    """Sends `body` to `to`; with `config`, also waits until the message is
    in the view (250 means durable in the log; the view follows a moment
    later)."""
    before = inbox_count(config, to) if config else 0
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail(sender, [to], body)
    deadline = time.time() + 10
    while config and inbox_count(config, to) <= before:
        if time.time() > deadline:
            raise AssertionError("the message to %s never reached the view" % to)
        time.sleep(0.05)


def start_unbound(directory, port, zones, signed_zone=None):
    """Debian's unbound on 127.0.0.1:`port`, answering for `zones` only
    ({zone: [records]}; everything else is NXDOMAIN: it never asks the
    internet); `signed_zone` (name, file) is served with its DNSSEC
    records, as an authoritative server would."""
    conf = os.path.join(directory, "unbound.conf")
    lines = ["server:", "  interface: 127.0.0.1@%d" % port, "  port: %d" % port,
             "  do-daemonize: no", '  username: ""', '  chroot: ""', '  pidfile: ""',
             '  directory: "%s"' % directory, "  use-syslog: no", "  do-ip6: no",
             "  access-control: 127.0.0.0/8 allow", '  module-config: "iterator"',
             '  local-zone: "." static']
    for zone, data in zones.items():
        lines.append('  local-zone: "%s." static' % zone)
        lines += ["  local-data: '%s'" % d for d in data]
    if signed_zone:
        name, zonefile = signed_zone
        lines.append('  local-zone: "%s." transparent' % name)
        lines += ["auth-zone:", '  name: "%s."' % name, '  zonefile: "%s"' % zonefile,
                  "  for-downstream: yes", "  for-upstream: yes"]
    lines += ["remote-control:", "  control-enable: no"]
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    proc = subprocess.Popen(["unbound", "-d", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while time.time() < deadline:
        r = subprocess.run(["python3", "-c", "import socket;s=socket.socket(socket.AF_INET,"
                            "socket.SOCK_DGRAM);s.settimeout(0.2);"
                            "s.sendto(bytes.fromhex('1234010000010000000000000765786d706c65036e65740000010001'),"
                            "('127.0.0.1',%d));s.recv(512)" % port], capture_output=True)
        if r.returncode == 0:
            return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("unbound did not start: %s" % proc.stderr.read().decode())


# The [smtp] keys that turn the MX's SPF, DKIM and DMARC checks off.
NO_CHECKS = "[smtp]\ncheck_spf = false\ncheck_dkim = false\ncheck_dmarc = false\n"


class MailServer:
    """A daemon for a test class: a temporary directory with a certificate,
    a configuration with one listener per (protocol, port) and the TLS and
    security settings the protocol tests share, the accounts (password
    "pw"), and the running daemon, waited for until `ready` is logged."""

    def __init__(self, prefix, listeners, users, ready, outbound=None, security=""):
        from test_daemon import Daemon, write_config
        self.tmp = tempfile.TemporaryDirectory(prefix=prefix)
        make_cert(self.tmp.name)
        config = "".join('[[server.listener]]\nprotocol = "%s"\nbind = "127.0.0.1:%d"\n' % lp
                         for lp in listeners)
        config += ('[tls]\ncertificate = "cert.pem"\nprivate_key = "key.pem"\n'
                   '[security]\nauth_failures_before_delay = 100\n' + security)
        # Outbound DNS never leaves loopback: by default nothing answers
        # there (queued mail is deferred), or the test's own DNS server.
        config += outbound or '[outbound]\nresolvers = ["127.0.0.1@9"]\n'
        if outbound is None:
            # Nothing answers DNS: the MX's SPF/DKIM/DMARC checks
            # (test_authentication.py) would only wait for it.
            config += NO_CHECKS
        self.config = write_config(self.tmp.name, config)
        for who in users:
            r = ctl(self.config, "account", "add", who + "@example.test", "--password", "pw")
            assert r.returncode == 0, r.stderr
        self.daemon = Daemon(self.config)
        self.daemon.wait_for(ready)

    def stop(self):
        assert self.daemon.stop() == 0, self.daemon.output()
        self.tmp.cleanup()


class Senders:
    """SMTP clients delivering distinct messages (`lines` of 72 octets: by
    default 2 KiB to 300 KiB) until stopped, reconnecting while the daemon
    is down; `acked` holds (recipient, token) of every 250, the token being
    the message's Subject and Message-ID local part."""

    def __init__(self, port, accounts, threads=4, lines=(30, 4300), prefix="load", pause=0.0):
        self.port, self.accounts, self.lines, self.prefix = port, accounts, lines, prefix
        self.pause = pause
        self.seed = random.randrange(1 << 30)
        self.acked, self.lock, self.stop_flag = [], threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, i):
        rng = random.Random(self.seed + i)
        n = 0
        while not self.stop_flag.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
                    while not self.stop_flag.is_set():
                        n += 1
                        to = rng.choice(self.accounts)
                        token = "%s-%d-%d-%d" % (self.prefix, i, n, rng.randrange(1 << 30))
                        body = ("Subject: %s\r\nMessage-ID: <%s@example.net>\r\n\r\n" % (token, token)
                                + ("z" * 70 + "\r\n") * rng.randrange(*self.lines))
                        s.sendmail("load@example.net", [to], body)
                        with self.lock:
                            self.acked.append((to, token))
                        if self.pause:
                            time.sleep(self.pause)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)  # the daemon is down: try again

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()
