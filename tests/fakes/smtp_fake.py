#!/usr/bin/python3
"""A real SMTP server on loopback (Debian's python3-aiosmtpd) for the smtp provider's tests.

Every accepted message is parsed with Python's own email package (an independent MIME reader) and
appended as one JSON line to --out: envelope, authenticated user, TLS, decoded headers and the
decoded text of every part, plus the raw message.

Usage: smtp_fake.py --port-file F --out messages.jsonl [--tls none|starttls|implicit --cert C --key K]
                    [--auth USER:PASSWORD] [--reject-rcpt TEXT] [--temp-fail N]
  --tls starttls   offers STARTTLS and refuses MAIL before it; implicit: TLS from the first byte
  --auth           requires AUTH (PLAIN/LOGIN) with these credentials before MAIL
  --reject-rcpt    answers 550 to recipients containing TEXT
  --temp-fail N    answers 451 to the DATA of the first N messages
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tls", default="none", choices=["none", "starttls", "implicit"])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth")
    p.add_argument("--reject-rcpt")
    p.add_argument("--temp-fail", type=int, default=0)
    return p.parse_args()


class Handler:
    def __init__(self, args):
        self.args = args
        self.data_count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.args.reject_rcpt and self.args.reject_rcpt in address:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_count += 1
        if self.data_count <= self.args.temp_fail:
            return "451 4.3.0 Try again later"
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            parts.append({
                "content_type": part.get_content_type(),
                "charset": part.get_content_charset(),
                "transfer_encoding": part.get("Content-Transfer-Encoding", ""),
                # As a mail client shows it: the wire's CRLF line ends as "\n".
                "text": part.get_content().replace("\r\n", "\n"),
            })
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_user": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
            "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            "headers": {k: str(v) for k, v in msg.items()},
            "content_type": msg.get_content_type(),
            "parts": parts,
            "raw": raw.decode("utf-8", "replace"),
        }
        with open(self.args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 2.0.0 Ok: queued"


def main():
    args = parse_args()
    handler = Handler(args)
    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        user, password = args.auth.split(":", 1)
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
              and auth_data.password.decode() == password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def factory():
        kwargs = {"hostname": "fake-smtp.local"}
        if args.tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        if args.auth:
            kwargs.update(authenticator=authenticator, auth_required=True,
                          auth_require_tls=args.tls != "none")
        return SMTP(handler, **kwargs)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        factory, "127.0.0.1", 0, ssl=context if args.tls == "implicit" else None))
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, args.port_file)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
