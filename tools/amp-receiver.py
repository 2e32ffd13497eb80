#!/usr/bin/env python3
"""A local stand-in for Amazon Managed Service for Prometheus's remote-write endpoint
(`POST /workspaces/<id>/api/v1/remote_write`), for tests: it checks what AMP checks before it
takes a write, and answers as AMP does.

- The remote-write headers: `Content-Encoding: snappy`, `Content-Type: application/x-protobuf`,
  `X-Prometheus-Remote-Write-Version`; else 400.
- SigV4: an `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/aps/aws4_request,
  SignedHeaders=…, Signature=…` for the configured key, region and service `aps`, with
  `X-Amz-Date` within 5 minutes; the signature is recomputed here with botocore's own SigV4
  signer (an implementation independent of the Rust side's aws-sigv4) over the signed headers,
  the path and the body's SHA-256. A missing or wrong signature is 403 with AMP's message.
- Accepted: 200, empty body. `GET /received` answers {"accepted": n, "refused": n}.

Usage: amp-receiver.py PORT ACCESS_KEY SECRET_KEY REGION
"""
import datetime
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

PORT, ACCESS_KEY, SECRET_KEY, REGION = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
SERVICE = "aps"
counts = {"accepted": 0, "refused": 0}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("amp-receiver: " + (fmt % args) + "\n")

    def answer(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, status, message):
        counts["refused"] += 1
        self.answer(status, {"message": message})

    def do_GET(self):
        if self.path == "/received":
            return self.answer(200, counts)
        self.answer(404, {"message": "not found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not (self.path.startswith("/workspaces/") and self.path.endswith("/api/v1/remote_write")):
            return self.refuse(404, "not found")
        auth = self.headers.get("Authorization")
        if not auth:
            return self.refuse(403, "Missing Authentication Token")
        try:
            algorithm, rest = auth.split(" ", 1)
            parts = dict(p.strip().split("=", 1) for p in rest.split(","))
            key, date, region, service, terminal = parts["Credential"].split("/")
            signed = parts["SignedHeaders"].split(";")
            signature = parts["Signature"]
        except (ValueError, KeyError):
            return self.refuse(403, "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'")
        if algorithm != "AWS4-HMAC-SHA256" or terminal != "aws4_request":
            return self.refuse(403, "Unsupported signature algorithm")
        if key != ACCESS_KEY:
            return self.refuse(403, "The security token included in the request is invalid.")
        if region != REGION or service != SERVICE:
            return self.refuse(403, f"Credential should be scoped to a valid region ({REGION}) and service ({SERVICE})")
        amz_date = self.headers.get("X-Amz-Date", "")
        try:
            at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            return self.refuse(403, "Missing or malformed X-Amz-Date")
        if abs((datetime.datetime.now(datetime.timezone.utc) - at).total_seconds()) > 300:
            return self.refuse(403, "Signature expired")
        for needed in ("host", "x-amz-date"):
            if needed not in signed:
                return self.refuse(403, f"'{needed}' must be a signed header")
        headers = {h: self.headers.get(h, "") for h in signed}
        request = AWSRequest(method="POST", url=f"http://{self.headers['Host']}{self.path}", data=body, headers=headers)
        request.context["timestamp"] = amz_date
        token = self.headers.get("X-Amz-Security-Token")
        signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), SERVICE, REGION)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if expected != signature:
            return self.refuse(
                403,
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method.",
            )
        if (
            self.headers.get("Content-Encoding") != "snappy"
            or self.headers.get("Content-Type") != "application/x-protobuf"
            or not self.headers.get("X-Prometheus-Remote-Write-Version")
        ):
            return self.refuse(400, "remote write needs Content-Encoding: snappy, Content-Type: application/x-protobuf and X-Prometheus-Remote-Write-Version")
        counts["accepted"] += 1
        self.answer(200)


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
