"""A receiving SMTP server playing a remote domain's mail host in the
outbound tests: Debian's aiosmtpd (run with /usr/bin/python3, which sees
Debian's packages), on a loopback address and port.

What it answers depends on the recipient's local part:
  defer-N...   451 4.7.1 for the first N attempts, then accepted
  reject...    550 5.1.1 at RCPT
  dataerr...   554 5.6.0 at the end of DATA
  garbage...   a reply that is not SMTP at the end of DATA
  huge...      a reply of 200 continuation lines at the end of DATA
  drop...      the connection closed instead of the final reply
  stallonce... the first time no final reply (for 60 s), then accepted
  stall...     no final reply for 60 s
  anything     250
Every accepted message is written to DIR as <n>.eml (the envelope and the
client's address and port as X-Test-* header lines first), so a test reads
what arrived, and over how many connections.

With --tls CERT KEY it offers STARTTLS with that certificate (a DANE
host). With --relay CERT KEY USER:PASS it plays a smarthost instead: STARTTLS
required, then AUTH PLAIN/LOGIN with those credentials only; the login used
is recorded as an X-Test-Auth line.

usage: /usr/bin/python3 remote_mta.py HOST PORT DIR [--tls CERT KEY | --relay CERT KEY USER:PASS]
"""
import asyncio
import os
import re
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, directory):
        self.directory = directory
        self.attempts = {}
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        m = re.match(r"defer-(\d+)", local)
        if m:
            n = self.attempts.get(address, 0) + 1
            self.attempts[address] = n
            if n <= int(m.group(1)):
                return "451 4.7.1 Greylisted, try again later"
        if local.startswith("reject"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        local = envelope.rcpt_tos[0].split("@")[0] if envelope.rcpt_tos else ""
        if local.startswith("dataerr"):
            return "554 5.6.0 Message refused"
        if local.startswith("garbage"):
            return "hello there, this is no SMTP reply"
        if local.startswith("huge"):
            return "\r\n".join(["250-" + "x" * 900] * 200 + ["250 ok"])
        if local.startswith("drop"):
            server.transport.close()
            return "250 never sent"
        if local.startswith("stallonce"):
            # The first time: the whole message read, no reply (the
            # client is killed meanwhile); a marker says it got this far.
            if not self.attempts.get("stalled:" + local):
                self.attempts["stalled:" + local] = 1
                open(os.path.join(self.directory, "stalled-" + local), "w").close()
                await asyncio.sleep(60)
                return "451 4.4.2 Too late"
        elif local.startswith("stall"):
            await asyncio.sleep(60)
        self.count += 1
        path = os.path.join(self.directory, "%d.eml" % self.count)
        with open(path + ".tmp", "wb") as f:
            f.write(b"X-Test-Mail-From: <%s>\r\n" % envelope.mail_from.encode())
            # The client's address and port: one connection, one peer.
            f.write(b"X-Test-Peer: %s:%d\r\n" % (session.peer[0].encode(), session.peer[1]))
            if getattr(session, "ssl", None):
                f.write(b"X-Test-TLS: yes\r\n")
            login = getattr(session, "test_login", None)
            if login:
                f.write(b"X-Test-Auth: %s\r\n" % login)
            for r in envelope.rcpt_tos:
                f.write(b"X-Test-Rcpt-To: <%s>\r\n" % r.encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Ok: queued as %d" % self.count


def main():
    host, port, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(directory, exist_ok=True)
    handler = Handler(directory)
    extra = {}
    if len(sys.argv) > 4 and sys.argv[4] == "--tls":
        # STARTTLS offered with this certificate, not required.
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[5], sys.argv[6])
        extra = dict(tls_context=tls)
    if len(sys.argv) > 4 and sys.argv[4] == "--relay":
        cert, key, creds = sys.argv[5], sys.argv[6], sys.argv[7]
        user, password = creds.split(":", 1)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
                  and auth_data.password == password.encode())
            if ok:
                session.test_login = auth_data.login
            return AuthResult(success=ok)

        extra = dict(tls_context=tls, require_starttls=True, authenticator=authenticator,
                     auth_required=True, auth_require_tls=True)
    controller = Controller(handler, hostname=host, port=port, server_hostname="mx.test",
                            decode_data=False, enable_SMTPUTF8=True, **extra)
    controller.start()
    print("listening", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    controller.stop()


if __name__ == "__main__":
    main()
