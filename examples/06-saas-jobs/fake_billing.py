#!/usr/bin/env python3
"""A billing provider for the example, on this machine: GET /v1/invoices answers three pages of
invoices, a cursor from one to the next, to a request with `Authorization: Bearer demo-key`.

    python3 examples/06-saas-jobs/fake_billing.py 8099
"""
import json
import sys
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KEY = "demo-key"


def day(n):
    return (datetime.now(timezone.utc) - timedelta(days=n)).isoformat()


def invoice(number, email, plan, amount, status, days_ago):
    return {"number": number, "customer_email": email, "plan": plan, "amount": amount,
            "status": status, "issued_at": day(days_ago)}


PAGES = {
    None: {"data": [invoice("INV-1", "ann@example.com", "pro", 49.5, "paid", 2),
                    invoice("INV-2", "bo@example.com", "team", 199, "paid", 3)],
           "next_cursor": "p2"},
    "p2": {"data": [invoice("INV-3", "cy@example.com", "pro", 49.5, "open", 1)],
           "next_cursor": "p3"},
    "p3": {"data": [invoice("INV-4", "di@example.com", "team", 99, "paid", 4)],
           "next_cursor": None},
}


class Billing(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self.answer(401, {"error": "a bearer key is required"})
        if url.path != "/v1/invoices":
            return self.answer(404, {"error": "not found"})
        cursor = parse_qs(url.query).get("cursor", [None])[0]
        if cursor not in PAGES:
            return self.answer(400, {"error": f"unknown cursor {cursor}"})
        self.answer(200, PAGES[cursor])

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8099
    print(f"fake billing API on http://127.0.0.1:{port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Billing).serve_forever()
