"""A fake Hugging Face Hub on 127.0.0.1 for the hub tests (stdlib http.server in a thread).

Implements the part of the Hub HTTP API that huggingface_hub calls for `lgen push` (create
repo, validate README YAML, create branch, preupload, NDJSON commit) and for downloads
(repo info at a revision, the recursive tree listing, HEAD/GET of `resolve/REV/PATH` with
the X-Repo-Commit / ETag / Content-Length headers), with the Hub's error codes (X-Error-Code:
RepoNotFound, RevisionNotFound, EntryNotFound) so huggingface_hub raises its real exception
types. The preupload answer makes every file a regular (inline base64) upload: no LFS or
Xet. Every request is logged in `requests` as (method, path). Point HF_ENDPOINT at `url`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit sha
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> {path: content}
    commit_count: int = 0

    def resolve(self, revision: str):
        sha = self.branches.get(revision, revision)
        return sha if sha in self.commits else None


class FakeHub:
    """The server's state and its thread. Use as a context manager (or start()/stop())."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "FakeHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # state helpers --------------------------------------------------------------------
    def create(self, repo_id: str, private: bool = False) -> Repo:
        repo = Repo(private=private)
        self._commit(repo, "main", {".gitattributes": b"*.onnx filter=lfs diff=lfs merge=lfs -text\n"}, None)
        self.repos[repo_id] = repo
        return repo

    def _commit(self, repo: Repo, branch: str, files: dict[str, bytes], parent: str | None) -> str:
        repo.commit_count += 1
        tree = dict(repo.commits[parent]) if parent else {}
        tree.update(files)
        sha = hashlib.sha1(json.dumps([branch, repo.commit_count, sorted(tree)]).encode()).hexdigest()
        repo.commits[sha] = tree
        repo.branches[branch] = sha
        return sha

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo.commits[repo.resolve(revision)]

    def calls(self, method: str | None = None, contains: str = "") -> list[tuple[str, str]]:
        with self.lock:
            return [(m, p) for m, p in self.requests if (method is None or m == method) and contains in p]


def _make_handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        # plumbing ---------------------------------------------------------------------
        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  content_type: str = "application/json", head: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, obj, headers: dict[str, str] | None = None, head: bool = False) -> None:
            self._send(status, json.dumps(obj).encode(), headers, head=head)

        def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
            self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}, head=head)

        def _repo(self, repo_id: str, head: bool = False):
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found", head)
            return repo

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            with hub.lock:
                hub.requests.append((method, unquote(path)))
            body = self._body() if method in ("POST", "PUT") else b""
            seg = path.strip("/").split("/")
            with hub.lock:
                self._route(method, seg, body, parts.query)

        def _route(self, method: str, seg: list[str], body: bytes, query: str) -> None:
            head = method == "HEAD"
            if method == "POST" and seg[:3] == ["api", "repos", "create"]:
                data = json.loads(body)
                repo_id = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
                if repo_id in hub.repos:
                    return self._json(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"})
                hub.create(repo_id, private=data.get("visibility") == "private" or bool(data.get("private")))
                return self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
            if method == "POST" and seg[:2] == ["api", "validate-yaml"]:
                return self._json(200, {"errors": [], "warnings": []})
            if seg[:2] == ["api", "models"] and len(seg) >= 5:
                repo_id, action, rest = f"{seg[2]}/{seg[3]}", seg[4], [unquote(s) for s in seg[5:]]
                repo = self._repo(repo_id, head)
                if repo is None:
                    return
                revision = rest[0] if rest else "main"
                if method == "POST" and action == "branch":
                    if revision in repo.branches:
                        return self._error(409, "BranchExists", "Reference already exists")
                    repo.branches[revision] = repo.branches["main"]
                    return self._json(200, {})
                sha = repo.resolve(revision)
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
                if method == "POST" and action == "preupload":
                    files = json.loads(body)["files"]
                    return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                                       "oid": None} for f in files]})
                if method == "POST" and action == "commit":
                    added: dict[str, bytes] = {}
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                        elif item["key"] != "header":
                            return self._json(400, {"error": f"fake hub: unsupported commit item {item['key']}"})
                    new = hub._commit(repo, revision, added, sha)
                    return self._json(200, {"success": True, "commitOid": new, "commitUrl": f"{hub.url}/{repo_id}/commit/{new}",
                                            "hookOutput": ""})
                if method in ("GET", "HEAD") and action == "revision":
                    tree = repo.commits[sha]
                    return self._json(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.private,
                                            "siblings": [{"rfilename": p} for p in sorted(tree)], "tags": [],
                                            "downloads": 0, "likes": 0, "lastModified": "2025-01-01T00:00:00.000Z"},
                                      head=head)
                if method == "GET" and action == "tree":
                    prefix = "/".join(rest[1:])
                    tree = repo.commits[sha]
                    entries = [{"type": "file", "path": p, "size": len(c), "oid": git_blob_oid(c)}
                               for p, c in sorted(tree.items()) if not prefix or p.startswith(prefix + "/")]
                    return self._json(200, entries)
                return self._json(404, {"error": f"fake hub: no route {method} {'/'.join(seg)}"})
            if method in ("GET", "HEAD") and len(seg) >= 5 and seg[2] == "resolve":
                repo_id = f"{seg[0]}/{seg[1]}"
                repo = self._repo(repo_id, head)
                if repo is None:
                    return
                revision, rel = unquote(seg[3]), unquote("/".join(seg[4:]))
                sha = repo.resolve(revision)
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
                content = repo.commits[sha].get(rel)
                if content is None:
                    return self._error(404, "EntryNotFound", f"{rel} does not exist on {revision}", head)
                return self._send(200, content, {"X-Repo-Commit": sha, "ETag": f'"{git_blob_oid(content)}"'},
                                  content_type="application/octet-stream", head=head)
            return self._json(404, {"error": f"fake hub: no route {method} {'/'.join(seg)}"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_HEAD(self) -> None:
            self._handle("HEAD")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler
