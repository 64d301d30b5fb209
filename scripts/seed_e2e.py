#!/usr/bin/env python3
"""The seed's end-to-end client (task 20), run against a real server.

Usage:
  scripts/seed_e2e.py [BASE_URL]            check a server that is already running
                                            (default http://127.0.0.1:8000)
  scripts/seed_e2e.py --spawn BINARY        start BINARY on a free port over a fresh SQLite
                                            file, run the checks, then stop it

Only the standard library is used, so it runs on a fresh machine. Like the seed's `requests`
client it sends form bodies, keeps the session cookie, and follows the logout redirect.
"""
import http.cookiejar
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

EMAIL = "guillaume@holberton.io"
PASSWD = "b4l0u"
NEW_PASSWD = "t4rt1fl3tt3"


class SeeOtherAsGet(urllib.request.HTTPRedirectHandler):
    """Follows a 303 with a GET whatever the method was, as `requests` does (urllib only
    follows redirects of GET, HEAD and POST)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if code == 303:
            return urllib.request.Request(newurl, method="GET")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Client:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.opener = urllib.request.build_opener(
            SeeOtherAsGet(), urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(self, method, path, fields=None):
        data = urllib.parse.urlencode(fields).encode() if fields is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def expect(label, outcome, status, body=None):
    got_status, got_body = outcome
    if got_status != status or (body is not None and got_body != body):
        sys.exit(f"FAIL {label}: got {got_status} {got_body!r}, expected {status} {body!r}")
    print(f"ok   {label}: {got_status} {json.dumps(got_body)}")
    return got_body


def run(base):
    client = Client(base)
    expect("register_user", client.request("POST", "/users", {"email": EMAIL, "password": PASSWD}),
           200, {"email": EMAIL, "message": "user created"})
    expect("log_in_wrong_password",
           client.request("POST", "/sessions", {"email": EMAIL, "password": NEW_PASSWD}), 401)
    expect("profile_unlogged", client.request("GET", "/profile"), 403)
    expect("log_in", client.request("POST", "/sessions", {"email": EMAIL, "password": PASSWD}),
           200, {"email": EMAIL, "message": "logged in"})
    expect("profile_logged", client.request("GET", "/profile"), 200, {"email": EMAIL})
    # urllib, like requests, follows the 303 with a GET.
    expect("log_out", client.request("DELETE", "/sessions"), 200, {"message": "Bienvenue"})
    body = expect("reset_password_token",
                  client.request("POST", "/reset_password", {"email": EMAIL}), 200)
    if body.get("email") != EMAIL or not body.get("reset_token"):
        sys.exit(f"FAIL reset_password_token: unexpected body {body!r}")
    expect("update_password", client.request("PUT", "/reset_password", {
        "email": EMAIL, "reset_token": body["reset_token"], "new_password": NEW_PASSWD}),
        200, {"email": EMAIL, "message": "Password updated"})
    expect("log_in (new password)",
           client.request("POST", "/sessions", {"email": EMAIL, "password": NEW_PASSWD}),
           200, {"email": EMAIL, "message": "logged in"})
    print("seed end-to-end run: all steps passed")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_and_run(binary):
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        env = dict(os.environ, ROCKET_PORT=str(port), ROCKET_LOG_LEVEL="critical",
                   ROCKET_DATABASES=f'{{auth={{url="{data}/auth.sqlite3"}}}}',
                   ROCKET_MAIL_OUTBOX=f"{data}/outbox")
        server = subprocess.Popen([binary], env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/", timeout=1).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        sys.exit("FAIL the server did not start")
                    time.sleep(0.05)
            run(base)
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--spawn":
        spawn_and_run(sys.argv[2])
    else:
        run(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
