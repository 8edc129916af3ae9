#!/usr/bin/env python3
"""The example Alertmanager receiver of compose.yaml: a webhook that prints each notification.

Alertmanager POSTs one JSON document per notification (a group of alerts, firing or resolved); this
prints one JSON line per alert on stdout, so `docker compose logs -f alert-log` shows what would have
paged someone:

  {"status": "firing", "alertname": "PvDeadLettersNotReplayed", "severity": "warning",
   "labels": {...}, "summary": "...", "startsAt": "...", "endsAt": "..."}

Standard library only. Replace it with a real receiver (deploy/alertmanager/alertmanager.yml);
tests/deploy/monitoring_test.sh runs it behind Debian's Alertmanager.
"""
import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self.send_error(400 if length <= 0 else 413)
            return
        try:
            notification = json.loads(self.rfile.read(length))
            alerts = notification["alerts"]
        except (ValueError, KeyError, TypeError):
            self.send_error(400, "not an Alertmanager webhook notification")
            return
        for alert in alerts:
            labels = alert.get("labels", {})
            line = {
                "status": alert.get("status", notification.get("status")),
                "alertname": labels.get("alertname"),
                "severity": labels.get("severity"),
                "labels": labels,
                "summary": alert.get("annotations", {}).get("summary"),
                "startsAt": alert.get("startsAt"),
                "endsAt": alert.get("endsAt"),
                "receiver": notification.get("receiver"),
            }
            print(json.dumps(line, sort_keys=True), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # a health check
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, fmt, *args):  # requests are not news; stderr stays for errors
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9099, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(json.dumps({"listening": "%s:%d" % server.server_address[:2]}), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
