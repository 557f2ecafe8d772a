"""A loopback HTTP server that answers like the Hugging Face Hub's file endpoints.

HEAD/GET {endpoint}/{repo_id}/resolve/{revision}/{filename}: 200 with X-Repo-Commit, ETag
(the sha256 of the bytes, as for LFS files) and Content-Length, or 404 with X-Error-Code
RepoNotFound / RevisionNotFound / EntryNotFound. Every request is logged so tests can assert
exactly what was fetched. ``corrupt`` serves other bytes of the same length under the right ETag.

``mode`` makes every answer fail one way, as servers and networks do: ``silent`` (accepts and never
answers), ``500``, ``429``, ``404html`` and ``html`` (a captive portal's page), ``truncated`` (the
body ends early), ``stall`` (the body stops coming), ``redirect`` (to itself, forever) and ``flip``
(one byte of the body flipped, under the right ETag).
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> commit -> filename -> bytes
        self.branches: dict[str, dict[str, str]] = {}  # repo -> branch -> commit
        self.log: list[tuple[str, str]] = []
        self.corrupt: set[str] = set()
        self.git_files: set[str] = set()  # kept in git, not LFS: their ETag is the git blob id (sha1)
        self.mode: str | None = None
        self._stop = threading.Event()
        self._server = None

    def add(self, repo: str, filename: str, data: bytes, commit: str = "a" * 40, branch: str = "main") -> str:
        self.repos.setdefault(repo, {}).setdefault(commit, {})[filename] = data
        self.branches.setdefault(repo, {})[branch] = commit
        return hashlib.sha256(data).hexdigest()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def requests(self, method: str | None = None) -> list[tuple[str, str]]:
        return [r for r in self.log if method is None or r[0] == method]

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, send_body: bool):
                hub.log.append((self.command, self.path))
                if hub.mode is not None and self._fail(hub.mode, send_body):
                    return
                parts = [unquote(p) for p in self.path.split("?")[0].lstrip("/").split("/")]  # a revision may hold %2F
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._error(404, "RepoNotFound", b"")
                repo, rev, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if repo not in hub.repos:
                    return self._error(404, "RepoNotFound", b"")
                commit = hub.branches[repo].get(rev, rev)
                if commit not in hub.repos[repo]:
                    return self._error(404, "RevisionNotFound", b"")
                files = hub.repos[repo][commit]
                if filename not in files:
                    return self._error(404, "EntryNotFound", commit.encode())
                data = files[filename]
                etag = hashlib.sha256(data).hexdigest()
                if filename in hub.git_files:
                    etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                body = bytes(len(data)) if filename in hub.corrupt else data
                if hub.mode == "flip":
                    body = body[:100] + bytes([body[100] ^ 1]) + body[101:]
                if hub.mode in ("truncated", "stall") and send_body:
                    self.send_response(200)
                    self.send_header("X-Repo-Commit", commit)
                    self.send_header("ETag", f'"{etag}"')
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if hub.mode == "stall":
                        hub._stop.wait(3600)
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{etag}"')
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def _fail(self, mode: str, send_body: bool) -> bool:
                """Answer as the failure ``mode`` does; False when the request goes on normally."""
                if mode == "silent":
                    hub._stop.wait(3600)
                    self.close_connection = True
                    return True
                portal = b"<html><body>Sign in to use this Wi-Fi network</body></html>"
                answers = {
                    "500": (500, {}, b"Internal Server Error"),
                    "429": (429, {"Retry-After": "1"}, b"Too Many Requests"),
                    "html": (200, {"Content-Type": "text/html"}, portal),
                    "404html": (404, {"Content-Type": "text/html"}, portal),
                    "redirect": (302, {"Location": self.path}, b""),
                }
                if mode not in answers:
                    return False
                code, headers, body = answers[mode]
                self.send_response(code)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                if send_body:
                    self.wfile.write(body)
                return True

            def _error(self, code, error_code, commit):
                self.send_response(code)
                self.send_header("X-Error-Code", error_code)
                self.send_header("X-Error-Message", error_code)
                if commit:
                    self.send_header("X-Repo-Commit", commit.decode())
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self):
                self._answer(False)

            def do_GET(self):
                self._answer(True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()  # releases the silent and stalled answers
        self._server.shutdown()
        self._server.server_close()
