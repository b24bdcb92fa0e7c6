"""Helpers the end-to-end tests share: ports, TLS for clients, a3ctl, a
certificate for the daemon, and SMTP delivery."""
import smtplib
import socket
import ssl
import subprocess

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


def deliver(port, to, body, sender="sender@example.net"):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail(sender, [to], body)
