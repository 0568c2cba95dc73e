#!/usr/bin/env python3
"""Writes N signed charge.success webhooks, one per line: `<hex signature> <body>`, for
references <prefix><start>..<prefix><start+N-1> (prefix default bench_). The signature is Paystack's: lowercase hex
HMAC-SHA512 of the body under the secret key."""
import hashlib
import hmac
import json
import sys

secret, start, count, amount = sys.argv[1].encode(), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
prefix = sys.argv[5] if len(sys.argv) > 5 else "bench_"
out = sys.stdout
for n in range(start, start + count):
    body = json.dumps({"event": "charge.success", "data": {
        "id": 4000000000 + n, "domain": "test", "status": "success", "reference": f"{prefix}{n}", "amount": amount,
        "currency": "NGN", "gateway_response": "Successful", "channel": "card"}}, separators=(",", ":"))
    sig = hmac.new(secret, body.encode(), hashlib.sha512).hexdigest()
    out.write(f"{sig} {body}\n")
