#!/usr/bin/env python3
"""The bench's Paystack: answers GET /transaction/verify/<reference> for the bench's payments
(every reference `bench_<n>` was paid AMOUNT NGN), with Paystack's documented shape. Threaded,
so the companion's worker is never waiting on a queue here."""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AMOUNT = int(os.environ.get("AMOUNT", "500000"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        prefix = "/transaction/verify/"
        if not self.path.startswith(prefix):
            return self.answer(404, {"status": False, "message": "Not found"})
        reference = self.path[len(prefix):]
        self.answer(200, {"status": True, "message": "Verification successful", "data": {
            "id": abs(hash(reference)) % 10**10, "domain": "test", "status": "success", "reference": reference,
            "amount": AMOUNT, "currency": "NGN", "paid_at": "2026-11-28T10:00:00.000Z", "channel": "card"}})

    def answer(self, status, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
