"""Checks a message's DKIM signature with python3-dkim (dkimpy), an
implementation independent of ours: prints "pass" or "fail: reason".

usage: /usr/bin/python3 dkim_verify.py MESSAGE SELECTOR DOMAIN PUBLIC_KEY_RECORD
(the record is the TXT value a DNS server would publish, e.g.
"v=DKIM1; k=rsa; p=MIIB...")."""
import sys

import dkim


def main():
    path, selector, domain, record = sys.argv[1:5]
    with open(path, "rb") as f:
        message = f.read()
    # The test server's own envelope lines are not part of the message.
    lines = message.split(b"\r\n")
    while lines and lines[0].startswith(b"X-Test-"):
        lines.pop(0)
    message = b"\r\n".join(lines)
    wanted = ("%s._domainkey.%s." % (selector, domain)).encode()

    def dnsfunc(name, timeout=5):
        return record.encode() if name.rstrip(b".") + b"." == wanted else b""

    d = dkim.DKIM(message)
    try:
        ok = d.verify(dnsfunc=dnsfunc)
    except dkim.DKIMException as e:
        print("fail: %s" % e)
        return
    print("pass" if ok else "fail: signature does not verify")


if __name__ == "__main__":
    main()
