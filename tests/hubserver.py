"""A local stand-in for the Hugging Face Hub, served over real sockets (stdlib http.server).

It answers what huggingface_hub asks of huggingface.co when it downloads a model:
- `GET /api/models/{repo}/revision/{rev}`: JSON with `id`, `sha` and `siblings`;
- `GET /api/models/{repo}/tree/{rev}?recursive=true`: the files with `oid`, `size` and, for
  large files, `lfs` (`oid` = sha256, `size`, `pointerSize`);
- `HEAD`/`GET /{repo}/resolve/{rev}/{file}`: small files answer 200 with `ETag` (the git blob
  id), `Content-Length` and `X-Repo-Commit`; large (LFS) files answer 302 to a second server
  (another origin, like the hub's CDN) with `X-Linked-Etag` (their sha256), `X-Linked-Size`
  and `X-Repo-Commit`;
- the "CDN" serves the bytes, honouring `Range: bytes=N-` with 206 and `Content-Range`.
Unknown repos answer 404 with `X-Error-Code: RepoNotFound`, unknown files `EntryNotFound`.

`faults[(repo, file)]` is a list of what to do to the next GETs of that file's bytes: "drop"
(send the headers and half the body, then close the connection), "error" (HTTP 500) or "hold"
(wait until the test sets `gate`, then answer normally).
`requests` logs (method, path, Range header) for the assertions.
"""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".gguf", ".safetensors")


class FakeHub:
    """Repos served on 127.0.0.1; use as a context manager; `endpoint` goes into HF_ENDPOINT."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: dict[str, str] = {}
        self.faults: dict[tuple[str, str], list[str]] = {}
        self.requests: list[tuple[str, str, Optional[str]]] = []
        self.gate = threading.Event()
        self.held = threading.Event()  # set when a "hold" fault is waiting on `gate`
        self._lock = threading.Lock()
        self._servers = [ThreadingHTTPServer(("127.0.0.1", 0), self._handler(cdn)) for cdn in (False, True)]
        for server in self._servers:
            server.daemon_threads = True

    # --- content ---------------------------------------------------------------------------
    def add_repo(self, repo: str, files: dict[str, bytes]) -> str:
        """Serve `files` (path in repo -> bytes) as `repo`; return its commit sha."""
        self.repos[repo] = dict(files)
        digest = hashlib.sha1(repo.encode())
        for name in sorted(files):
            digest.update(name.encode() + hashlib.sha256(files[name]).digest())
        self.commits[repo] = digest.hexdigest()
        return self.commits[repo]

    def add_folder(self, repo: str, folder: Path) -> str:
        return self.add_repo(repo, {p.relative_to(folder).as_posix(): p.read_bytes()
                                    for p in sorted(folder.rglob("*")) if p.is_file()})

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def content_gets(self, name: str) -> list[Optional[str]]:
        """The Range headers of every GET of the file `name`'s bytes (None: the whole file)."""
        return [rng for method, path, rng in self.requests if method == "GET" and path.endswith("/" + name)]

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeHub:
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self._servers]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.gate.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # --- HTTP ------------------------------------------------------------------------------
    @staticmethod
    def _blob_id(data: bytes) -> str:
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def _find(self, repo: str, rev: str) -> bool:
        return repo in self.repos and rev in ("main", self.commits[repo])

    def _handler(self, cdn: bool):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, str(value))
                if "Content-Length" not in (headers or {}):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, obj) -> None:
                self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json"})

            def _missing(self, code: str) -> None:
                self._send(404, json.dumps({"error": code}).encode(),
                           {"X-Error-Code": code, "Content-Type": "application/json"})

            def do_HEAD(self) -> None:
                self._route()

            def do_GET(self) -> None:
                self._route()

            def _route(self) -> None:
                url = urlsplit(self.path)
                path = unquote(url.path)
                with hub._lock:
                    hub.requests.append((self.command, path, self.headers.get("Range")))
                parts = path.strip("/").split("/")
                if cdn:
                    return self._serve_bytes(parts)
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                    repo, rev = f"{parts[2]}/{parts[3]}", parts[5]
                    if repo not in hub.repos:
                        return self._missing("RepoNotFound")
                    if not hub._find(repo, rev):
                        return self._missing("RevisionNotFound")
                    files = hub.repos[repo]
                    if parts[4] == "revision":
                        return self._json({"_id": repo, "id": repo, "modelId": repo, "sha": hub.commits[repo],
                                           "private": False, "tags": [], "downloads": 0, "likes": 0,
                                           "siblings": [{"rfilename": name} for name in sorted(files)]})
                    return self._json([self._tree_entry(name, data) for name, data in sorted(files.items())])
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, rev, name = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
                    if repo not in hub.repos:
                        return self._missing("RepoNotFound")
                    if not hub._find(repo, rev):
                        return self._missing("RevisionNotFound")
                    if name not in hub.repos[repo]:
                        return self._missing("EntryNotFound")
                    return self._resolve(repo, name, hub.repos[repo][name])
                return self._missing("RepoNotFound")

            @staticmethod
            def _tree_entry(name: str, data: bytes) -> dict:
                entry = {"type": "file", "oid": hub._blob_id(data), "size": len(data), "path": name}
                if name.endswith(LFS_SUFFIXES):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                return entry

            def _resolve(self, repo: str, name: str, data: bytes) -> None:
                commit = hub.commits[repo]
                if name.endswith(LFS_SUFFIXES):  # like the hub: redirect large files to another origin
                    sha = hashlib.sha256(data).hexdigest()
                    return self._send(302, b"", {
                        "Location": f"{hub.cdn}/{repo}/{sha}/{name}", "X-Repo-Commit": commit,
                        "ETag": f'"{hub._blob_id(data)}"', "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": len(data),
                    })
                self._bytes(repo, name, data, {"X-Repo-Commit": commit, "ETag": f'"{hub._blob_id(data)}"'})

            def _serve_bytes(self, parts: list[str]) -> None:
                repo, sha, name = f"{parts[0]}/{parts[1]}", parts[2], "/".join(parts[3:])
                data = hub.repos.get(repo, {}).get(name)
                if data is None or hashlib.sha256(data).hexdigest() != sha:
                    return self._send(404, b"not found")
                self._bytes(repo, name, data, {"ETag": f'"{sha}"'})

            def _bytes(self, repo: str, name: str, data: bytes, headers: dict) -> None:
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and self.command == "GET":
                    start = int(rng[len("bytes="):].split("-")[0])
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                body = data[start:]
                fault = None
                if self.command == "GET":
                    with hub._lock:
                        queue = hub.faults.get((repo, name))
                        fault = queue.pop(0) if queue else None
                if fault == "error":
                    return self._send(500, b"internal error")
                if fault == "hold":
                    hub.held.set()
                    hub.gate.wait(timeout=120)
                headers["Content-Length"] = len(body)
                headers["Accept-Ranges"] = "bytes"
                if fault == "drop":
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, str(value))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._send(status, body, headers)

        return Handler
