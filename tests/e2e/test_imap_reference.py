#!/usr/bin/env python3
"""IMAP against the reference: the real daemon and Debian's Dovecot get the
same messages, and tools/imap-diff compares what both answer to FETCH
(ENVELOPE, BODY, BODYSTRUCTURE, every section, BINARY) and SEARCH. The
messages are the edge cases the RFCs and real mail produce (written here)
and the corpus of real-world messages kept outside the repository. Any
difference that is not a documented choice (docs/imap-reference.md) fails."""
import os
import subprocess
import tempfile
import unittest

from dovecot_peer import Dovecot
from mailtest import MailServer, free_port

SOURCE = os.environ.get("A3_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
IMAP_DIFF = os.path.join(SOURCE, "tools", "imap-diff")
CORPUS = os.environ.get("A3_MIME_CORPUS",
                        os.path.join(SOURCE, "..", "shared", "mime-corpus"))


def crlf(text):
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# One message per known failure of the issue, each a file of its own so
# that a difference names it.
MESSAGES = {
    "envelope-route-group-nodomain": b"""Date: Tue, 1 Dec 2026 10:00:00 +0000
From: "Route" <@relay1.example,@relay2.example:user@example.com>
Sender: Whomever
Reply-To: Only A Name
To: undisclosed-recipients:;
Cc: Team: a@example.com, "B \\"Q\\"" <b@example.com>;, c@example.com (Carol)
Bcc: nobody
Subject: routes and groups
Message-ID: <route@example.com>

body
""",
    "envelope-raw-8bit-names": b"""Date: Tue, 1 Dec 2026 10:00:00 +0100
From: J\xfcrgen Schm\xfcrgen <j@example.com>
To: =?iso-8859-1?Q?Heinz_M=FCller?= <h@example.com>, =?UTF-8?B?w4lsb8Ovc2U=?= <e@example.com>
Subject: =?iso-8859-1?Q?Die_Hasen_und_die_Fr=F6sche?=
In-Reply-To: <a@example.com>

Fr\xf6sche
""",
    "date-west-of-utc": b"""Date: Mon, 1 Dec 2025 23:30:00 -0800
From: a@example.com
Subject: late in the west

x
""",
    "date-east-of-utc": b"""Date: Wed, 3 Dec 2025 00:30:00 +0900
From: a@example.com
Subject: early in the east

x
""",
    "date-missing": b"""From: a@example.com
Subject: no date at all

x
""",
    "date-unparsable": b"""Date: Tue, 7 Apr 2026 10:00:t
Message-ID: <unparsable@example.test>
From: a@example.com
Subject: a date that is not one

x
""",
    "folded-subject": b"""From: a@example.com
Subject: a subject
\tfolded with a tab
  and spaces

x
""",
    "boundary-prefix": b"""From: a@example.com
Subject: a boundary that is a prefix of another
Content-Type: multipart/mixed; boundary="ab"

--ab
Content-Type: multipart/alternative; boundary="abc"

--abc
Content-Type: text/plain

one
--abc
Content-Type: text/html

<p>two</p>
--ab
Content-Type: text/plain

three
--ab--
""",
    "missing-close-delimiters": b"""From: a@example.com
Subject: nothing closes
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

inner one
--outer
Content-Type: text/plain

outer two
""",
    "parts-without-headers": b"""From: a@example.com
Subject: parts with no header
Content-Type: multipart/mixed; boundary="b"

--b

no header, blank line
--b
no blank line either
--b

--b
Content-Type: text/plain
--b--
""",
    "nested-boundary-reuse": b"""From: a@example.com
Subject: the same boundary inside
Content-Type: multipart/mixed; boundary="same"

--same
Content-Type: multipart/mixed; boundary="same"

--same
Content-Type: text/plain

inner
--same--
--same
Content-Type: text/plain

outer
--same--
""",
    "quoted-printable-binary": b"""From: a@example.com
Subject: quoted-printable and base64
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="q"

--q
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe aus K=F6ln, a soft=
 break and a long line that goes on and on and on and on and on and on a=
nd on.
--q
Content-Type: application/octet-stream; name="x.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="x.bin"

AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
--q--
""",
    "nested-messages": b"""From: a@example.com
Subject: messages inside messages
Content-Type: multipart/mixed; boundary="m1"

--m1
Content-Type: text/plain

cover
--m1
Content-Type: message/rfc822

From: b@example.com
Subject: inner multipart
Content-Type: multipart/alternative; boundary="m2"

--m2
Content-Type: text/plain

inner text
--m2
Content-Type: message/rfc822

From: c@example.com
Subject: innermost

innermost body
--m2--
--m1
Content-Type: message/rfc822

From: d@example.com
Subject: single part inside

single
--m1--
""",
    "rfc2231-and-odd-fields": b"""From: a@example.com
Subject: parameters as sent
Content-Type: multipart/mixed; boundary=p

--p
Content-Type: text/plain; format=flowed; name*0="long"; name*1="name.txt"
Content-Disposition: attachment; filename*=utf-8''%C3%A9t%C3%A9.txt
Content-Language: en-GB, de
Content-Location: http://example.com/x
Content-ID: <id@example.com>
Content-Description: a description
Content-Transfer-Encoding: 8bit

caf\xc3\xa9
--p
Content-Type: application/pdf
Content-Transfer-Encoding: base64 (a comment)

JVBERi0=
--p
Content-Type: text/plain
Content-Transfer-Encoding: "quoted-printable"

=41
--p
Content-Type: message/external-body; access-type=mail-server server="listserv@example.com"; expiration="Fri, 14 Jun 1991 19:13:14 -0400 (EDT)"

Content-type: text/plain

get rfc-2231
--p--
""",
    "digest": b"""From: a@example.com
Subject: a digest
Content-Type: multipart/digest; boundary="d"

--d

From: x@example.com
Subject: first

first body
--d
Content-Type: text/plain

not a message
--d--
""",
    "top-level-message": b"""From: a@example.com
Subject: forwarded as the whole body
Content-Type: message/rfc822

From: b@example.com
Subject: the forwarded one
Content-Type: multipart/mixed; boundary="f"

--f
Content-Type: text/plain

forwarded text
--f--
""",
    "nul-octet": b"From: a@example.com\nSubject: a NUL inside\n\nbefore\x00after\n",
    "unicode-search": b"""From: a@example.com
Subject: =?UTF-8?Q?=C3=9Cber_Stra=C3=9Fen_und_M=C3=BCnchen?=
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe aus M=FCnchen und =C4gypten
""",
    "utf16-text": b"""From: a@example.com
Subject: text in UTF-16
Content-Type: text/plain; charset=utf-16le
Content-Transfer-Encoding: base64

SABlAGwAbABvACAAdwBvAHIAbABkAA==
""",
}


class ImapReferenceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = Dovecot.unavailable()
        if why:
            raise AssertionError("the reference server is needed: " + why)
        cls.imaps = free_port()
        cls.server = MailServer("a3-e2e-reference-", [("imaps", cls.imaps)], ("alice",),
                                "imap: listening on 127.0.0.1:%d" % cls.imaps)
        cls.dovecot = Dovecot(free_port())

    @classmethod
    def tearDownClass(cls):
        cls.dovecot.stop()
        cls.server.stop()

    def diff(self, *paths):
        ours = "imaps://alice%%40example.test:pw@127.0.0.1:%d" % self.imaps
        r = subprocess.run([IMAP_DIFF, "--ours", ours, "--theirs", self.dovecot.url(), *paths],
                           capture_output=True, timeout=600)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out[-6000:] + r.stderr.decode(errors="replace"))
        return out

    def test_edge_cases_answer_as_the_reference(self):
        with tempfile.TemporaryDirectory(prefix="a3-reference-") as d:
            for name, raw in MESSAGES.items():
                with open(os.path.join(d, name + ".eml"), "wb") as f:
                    f.write(crlf(raw))
            out = self.diff(d)
        summary = out.strip().splitlines()[-1]
        self.assertIn("%d messages" % len(MESSAGES), summary)
        # One documented difference: the reference refuses BINARY of the
        # message with odd transfer encodings, which we decode part by part.
        self.assertIn("documented differences)", summary)
        # Non-ASCII SEARCH keys were compared too (i;unicode-casemap).
        self.assertNotIn("SEARCH agrees on 0 of", summary)

    def test_the_real_world_corpus_answers_as_the_reference(self):
        self.assertTrue(os.path.isdir(CORPUS), "the MIME corpus is not at %s" % CORPUS)
        out = self.diff(CORPUS)
        self.assertIn("FETCH items agree", out)


if __name__ == "__main__":
    unittest.main()
