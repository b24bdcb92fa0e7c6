"""Signs a message with python3-dkim (dkimpy), as another domain's MTA
would: relaxed/relaxed, rsa-sha256. The signed message goes to stdout.

usage: /usr/bin/python3 dkim_sign.py PRIVATE_KEY.pem SELECTOR DOMAIN < MESSAGE"""
import sys

import dkim


def main():
    key_path, selector, domain = sys.argv[1:4]
    with open(key_path, "rb") as f:
        key = f.read()
    message = sys.stdin.buffer.read()
    signature = dkim.sign(message, selector.encode(), domain.encode(), key,
                          canonicalize=(b"relaxed", b"relaxed"),
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    sys.stdout.buffer.write(signature + message)


if __name__ == "__main__":
    main()
