"""The outbound socket does not wait for delayed ACKs: a message sent
alone with the queue idle reaches the next hop (a real smtp-sink) within
a few ms of tarpitd's 250. With Nagle's algorithm on, the end of data
(a small write after the body's larger one) waited for smtp-sink's
delayed ACK, 40 ms on Linux, on every message (relay_session.c open_socket)."""
import re
import statistics
import time
from datetime import datetime

import pytest

from peers import SmtpSink, missing

pytestmark = pytest.mark.skipif(bool(missing("smtp-sink")), reason="smtp-sink (Postfix) not installed")

RECIPIENTS = "alice@example.org\ncarol@office.test\n"


def ms(stamp):
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000.0


def test_idle_message_forwarded_without_delayed_ack(server):
    sink = SmtpSink().start()
    port = sink.port
    try:
        srv = server(recipients=RECIPIENTS, start=False)
        srv.extra = ('\n[relay "Office"]\nhost = 127.0.0.1:%d\ndomains = office.test\n'
                     "starttls = no\n" % port)
        srv.write_ini()
        srv.start()
        body = b"Subject: t\r\n\r\n" + b"x" * 70 + b"\r\n"
        body = body + (b"y" * 70 + b"\r\n") * 60  # a 4 KB body: more than one write
        for i in range(7):
            with srv.client() as c:
                c.greet()
                c.mail_rcpt("s@origin.test", ["carol@office.test"])
                c.expect(354, line="DATA")
                c.send(body + b".\r\n")
                r = c.reply()
                assert r.code == 250, r
                c.expect(221, line="QUIT")
            qid = r.text.split()[-1]
            deadline = time.monotonic() + 10
            while not re.search(r"event=relay id=%s .*status=sent" % qid, srv.stderr()):
                assert time.monotonic() < deadline, srv.stderr()[-2000:]
                time.sleep(0.01)
        text = srv.stderr(tail=100000)
        acc = {m.group(2): ms(m.group(1)) for m in
               re.finditer(r"^(\S+) \w+: event=accepted .*queue_id=(\w+)", text, re.M)}
        sent = {m.group(2): ms(m.group(1)) for m in
                re.finditer(r"^(\S+) \w+: event=relay id=(\w+) .*status=sent", text, re.M)}
        waits = [sent[k] - acc[k] for k in acc if k in sent]
        assert len(waits) == 7, text[-2000:]
        # 40 ms is the smallest delayed ACK Linux makes; without it the
        # wait is a millisecond or two on loopback.
        assert statistics.median(waits) < 25, waits
    finally:
        sink.stop()
