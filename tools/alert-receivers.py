#!/usr/bin/env python3
"""Local receivers for the services alert-router posts to, each checking the request shape
the service documents and answering as the service does (docs/alert-router.md#receivers):

  POST /pagerduty/v2/enqueue                 PagerDuty Events API v2 (202; 400 "invalid event")
  POST /opsgenie/v2/alerts                   OpsGenie create alert (202; dedup by open alias)
  POST /opsgenie/v2/alerts/{id}/close        OpsGenie close (identifierType=alias)
  POST /jira/rest/api/3/issue                Jira Cloud create issue (201 {id, key, self})
  POST /jira/rest/api/3/issue/{key}/comment  Jira Cloud add comment (201)
  POST /slack/services/...                   Slack incoming webhook, Block Kit (200 "ok")

Control (for tests and the demo): GET /_state (everything received, incidents, alerts, issues),
POST /_fail {"prefix": "/pagerduty", "status": 503, "times": 3} (the next N requests under the
prefix answer that status), POST /_reset.

Run: alert-receivers.py PORT  (127.0.0.1 only).
"""
import base64
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LOCK = threading.Lock()
STATE = {}


def reset():
    STATE.clear()
    STATE.update(requests=[], incidents={}, opsgenie={}, issues={}, slack=[], fail=[], next_issue={})


reset()

PD_SEVERITIES = {"critical", "error", "warning", "info"}
OG_PRIORITIES = {"P1", "P2", "P3", "P4", "P5"}
SLACK_BLOCKS = {"header", "section", "context", "divider", "actions", "image", "rich_text"}


def pagerduty(body, errors):
    if not isinstance(body.get("routing_key"), str) or len(body["routing_key"]) != 32:
        errors.append("'routing_key' must be a 32-character integration key")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' must be trigger, acknowledge or resolve")
    dk = body.get("dedup_key")
    if dk is not None and (not isinstance(dk, str) or not 0 < len(dk) <= 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dk:
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        p = body.get("payload")
        if not isinstance(p, dict):
            errors.append("'payload' is required for trigger")
        else:
            if not isinstance(p.get("summary"), str) or not 0 < len(p["summary"]) <= 1024:
                errors.append("'payload.summary' is required, at most 1024 characters")
            if not isinstance(p.get("source"), str) or not p["source"]:
                errors.append("'payload.source' is required")
            if p.get("severity") not in PD_SEVERITIES:
                errors.append("'payload.severity' must be critical, error, warning or info")
            if "custom_details" in p and not isinstance(p["custom_details"], dict):
                errors.append("'payload.custom_details' must be an object")
        for link in body.get("links", []):
            if not isinstance(link, dict) or not str(link.get("href", "")).startswith("http"):
                errors.append("'links[].href' must be a URL")
    for k in body:
        if k not in ("routing_key", "event_action", "dedup_key", "payload", "links", "images", "client", "client_url"):
            errors.append(f"unknown field '{k}'")
    if errors:
        return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    key = dk or f"pd-{len(STATE['incidents']) + 1}"
    inc = STATE["incidents"].get(key)
    if action == "trigger":
        if inc is None or inc["status"] == "resolved":
            inc = STATE["incidents"][key] = {"status": "triggered", "summary": body["payload"]["summary"], "pages": (inc or {}).get("pages", 0) + 1, "events": 0}
        inc["events"] += 1
    elif inc is not None:
        inc["status"] = "resolved" if action == "resolve" else "acknowledged"
        inc["events"] += 1
    return 202, {"status": "success", "message": "Event processed", "dedup_key": key}


def opsgenie_auth(headers, errors):
    auth = headers.get("Authorization", "")
    if not re.fullmatch(r"GenieKey \S+", auth):
        return 401, {"message": "Could not authenticate", "took": 0.0, "requestId": "r-auth"}
    return None


def opsgenie_create(body, errors):
    msg = body.get("message")
    if not isinstance(msg, str) or not 0 < len(msg) <= 130:
        errors.append("message: required, at most 130 characters")
    alias = body.get("alias")
    if alias is not None and (not isinstance(alias, str) or len(alias) > 512):
        errors.append("alias: at most 512 characters")
    if "priority" in body and body["priority"] not in OG_PRIORITIES:
        errors.append("priority: one of P1-P5")
    if len(body.get("description", "")) > 15000:
        errors.append("description: at most 15000 characters")
    if not isinstance(body.get("tags", []), list) or not isinstance(body.get("details", {}), dict):
        errors.append("tags must be a list and details an object")
    if errors:
        return 422, {"message": "Request body is not processable. " + "; ".join(errors), "took": 0.0, "requestId": "r-bad"}
    n = len(STATE["requests"])
    key = alias or f"og-{n}"
    a = STATE["opsgenie"].get(key)
    if a is not None and a["status"] == "open":
        a["count"] += 1  # OpsGenie's de-duplication: same alias while open
    else:
        STATE["opsgenie"][key] = {"status": "open", "message": msg, "priority": body.get("priority", "P3"), "count": 1, "notified": (a or {}).get("notified", 0) + 1}
    return 202, {"result": "Request will be processed", "took": 0.01, "requestId": f"r-{n}"}


def opsgenie_close(ident, query, body, errors):
    if query.get("identifierType", ["id"])[0] != "alias":
        errors.append("identifierType must be alias for an alias")
    a = STATE["opsgenie"].get(ident)
    if errors:
        return 422, {"message": "; ".join(errors), "took": 0.0, "requestId": "r-bad"}
    if a is None:
        # OpsGenie accepts asynchronously and fails later; say it here so tests see it.
        return 202, {"result": "Request will be processed", "took": 0.01, "requestId": "r-none", "warning": "no such alert"}
    a["status"] = "closed"
    return 202, {"result": "Request will be processed", "took": 0.01, "requestId": f"r-close-{len(STATE['requests'])}"}


def adf_ok(doc):
    return isinstance(doc, dict) and doc.get("type") == "doc" and doc.get("version") == 1 and isinstance(doc.get("content"), list) and all(isinstance(n, dict) and "type" in n for n in doc["content"])


def jira_auth(headers):
    auth = headers.get("Authorization", "")
    if not auth.startswith("Basic "):
        return False
    try:
        user, _, token = base64.b64decode(auth[6:]).decode().partition(":")
    except Exception:
        return False
    return "@" in user and bool(token)


def jira_issue(body, errors):
    f = body.get("fields")
    if not isinstance(f, dict):
        return 400, {"errorMessages": ["fields: required"], "errors": {}}
    errs = {}
    project = (f.get("project") or {}).get("key")
    if not isinstance(project, str) or not re.fullmatch(r"[A-Z][A-Z0-9]{0,9}", project):
        errs["project"] = "valid project is required"
    if not isinstance((f.get("issuetype") or {}).get("name"), str):
        errs["issuetype"] = "Specify an issue type"
    s = f.get("summary")
    if not isinstance(s, str) or not s or len(s) > 255 or "\n" in s:
        errs["summary"] = "Summary must be one line, at most 255 characters"
    if "description" in f and not adf_ok(f["description"]):
        errs["description"] = "Operation value must be an Atlassian Document"
    for label in f.get("labels", []):
        if not isinstance(label, str) or " " in label or not label:
            errs["labels"] = "labels cannot contain spaces"
    if errs:
        return 400, {"errorMessages": [], "errors": errs}
    n = STATE["next_issue"].get(project, 0) + 1
    STATE["next_issue"][project] = n
    key = f"{project}-{n}"
    STATE["issues"][key] = {"summary": s, "labels": f.get("labels", []), "comments": [], "project": project}
    return 201, {"id": str(10000 + len(STATE["issues"])), "key": key, "self": f"http://127.0.0.1/rest/api/3/issue/{key}"}


def jira_comment(key, body, errors):
    if key not in STATE["issues"]:
        return 404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}
    if not adf_ok(body.get("body")):
        return 400, {"errorMessages": [], "errors": {"comment": "Comment body must be an Atlassian Document"}}
    text = " ".join(t.get("text", "") for p in body["body"]["content"] for t in p.get("content", []))
    STATE["issues"][key]["comments"].append(text)
    return 201, {"id": str(len(STATE["requests"])), "body": body["body"]}


def slack(body, errors):
    blocks = body.get("blocks")
    if not isinstance(body.get("text"), str) or not body["text"]:
        errors.append("text: required as the notification fallback")
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > 50:
            errors.append("blocks: at most 50")
        for b in blocks or []:
            t = b.get("type")
            if t not in SLACK_BLOCKS:
                errors.append(f"unknown block type {t}")
            if t == "header" and (b.get("text", {}).get("type") != "plain_text" or len(b["text"].get("text", "")) > 150):
                errors.append("header: plain_text, at most 150 characters")
            if t == "section":
                if "text" not in b and "fields" not in b:
                    errors.append("section: text or fields required")
                if "text" in b and (b["text"].get("type") not in ("mrkdwn", "plain_text") or len(b["text"].get("text", "")) > 3000):
                    errors.append("section.text: mrkdwn or plain_text, at most 3000 characters")
                if len(b.get("fields", [])) > 10 or any(len(x.get("text", "")) > 2000 for x in b.get("fields", [])):
                    errors.append("section.fields: at most 10, 2000 characters each")
            if t == "context" and not 0 < len(b.get("elements", [])) <= 10:
                errors.append("context: 1-10 elements")
    if errors:
        return 400, "invalid_blocks"
    STATE["slack"].append(body)
    return 200, "ok"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, status, body):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_state":
            with LOCK:
                return self.reply(200, STATE)
        self.reply(404, {"message": "not found"})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self.reply(400, {"message": "body is not JSON"})
        with LOCK:
            if path == "/_reset":
                reset()
                return self.reply(200, {"ok": True})
            if path == "/_fail":
                STATE["fail"].append({"prefix": body["prefix"], "status": int(body.get("status", 503)), "times": int(body.get("times", 1))})
                return self.reply(200, {"ok": True})
            STATE["requests"].append({"path": path, "query": self.path.partition("?")[2], "body": body})
            for f in STATE["fail"]:
                if f["times"] > 0 and path.startswith(f["prefix"]):
                    f["times"] -= 1
                    return self.reply(f["status"], {"message": "injected failure"})
            errors = []
            if self.headers.get_content_type() != "application/json":
                return self.reply(415, {"message": "Content-Type must be application/json"})
            if path == "/pagerduty/v2/enqueue":
                return self.reply(*pagerduty(body, errors))
            if path.startswith("/opsgenie/"):
                denied = opsgenie_auth(self.headers, errors)
                if denied:
                    return self.reply(*denied)
                if path == "/opsgenie/v2/alerts":
                    return self.reply(*opsgenie_create(body, errors))
                m = re.fullmatch(r"/opsgenie/v2/alerts/(.+)/close", path)
                if m:
                    return self.reply(*opsgenie_close(m.group(1), query, body, errors))
            if path.startswith("/jira/"):
                if not jira_auth(self.headers):
                    return self.reply(401, {"errorMessages": ["You are not authenticated."], "errors": {}})
                if path == "/jira/rest/api/3/issue":
                    return self.reply(*jira_issue(body, errors))
                m = re.fullmatch(r"/jira/rest/api/3/issue/([A-Z0-9]+-\d+)/comment", path)
                if m:
                    return self.reply(*jira_comment(m.group(1), body, errors))
            if path.startswith("/slack/services/"):
                return self.reply(*slack(body, errors))
            self.reply(404, {"message": f"no receiver at {path}"})


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8490
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
