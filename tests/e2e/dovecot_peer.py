"""Debian's Dovecot as the reference IMAP server of the differential tests:
a private instance under a temporary directory, IMAP only, on a loopback
port, one user with a Maildir. It never touches /etc/dovecot or the system
service, and is stopped by its master's pid. Dovecot's master must start as
root (it switches to the mail user); without root or without Dovecot,
`Dovecot.unavailable()` says why."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time


class Dovecot:
    USER, PASSWORD = "ref", "pw"

    @staticmethod
    def unavailable():
        if shutil.which("dovecot") is None and not os.path.exists("/usr/sbin/dovecot"):
            return "Debian's dovecot-imapd is not installed"
        if os.geteuid() != 0:
            return "Dovecot's master must start as root"
        return None

    def __init__(self, port):
        self.port = port
        self.tmp = tempfile.mkdtemp(prefix="a3-dovecot-")
        os.chmod(self.tmp, 0o755)
        mail = pwd.getpwnam("mail")
        for d in ("etc", "run", "state", "log", "mail"):
            os.makedirs(os.path.join(self.tmp, d))
        os.chown(os.path.join(self.tmp, "mail"), mail.pw_uid, mail.pw_gid)
        users = os.path.join(self.tmp, "etc", "users")
        with open(users, "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (self.USER, self.PASSWORD))
        os.chmod(users, 0o644)
        self.conf = os.path.join(self.tmp, "etc", "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(f"""instance_name = a3-reference-{port}
base_dir = {self.tmp}/run
state_dir = {self.tmp}/state
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {self.tmp}/log/dovecot.log
mail_location = maildir:~/Maildir
mail_uid = {mail.pw_uid}
mail_gid = {mail.pw_gid}
first_valid_uid = {mail.pw_uid}
first_valid_gid = {mail.pw_gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
  default_fields = uid={mail.pw_uid} gid={mail.pw_gid} home={self.tmp}/mail/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
""")
        # The master keeps the descriptors it inherits: none may be a pipe.
        with open(os.path.join(self.tmp, "log", "stdio"), "wb") as out:
            subprocess.run(["dovecot", "-c", self.conf], check=True, stdin=subprocess.DEVNULL,
                           stdout=out, stderr=out, timeout=30)
        pidfile = os.path.join(self.tmp, "run", "master.pid")
        deadline = time.time() + 15
        while time.time() < deadline:
            if os.path.exists(pidfile) and self._listening():
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("Dovecot did not start; see %s/log/dovecot.log" % self.tmp)
        with open(pidfile) as f:
            self.pid = int(f.read().strip())

    def _listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def url(self):
        return "imap://%s:%s@127.0.0.1:%d" % (self.USER, self.PASSWORD, self.port)

    def log(self):
        try:
            with open(os.path.join(self.tmp, "log", "dovecot.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        shutil.rmtree(self.tmp, ignore_errors=True)
