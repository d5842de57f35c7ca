"""A Hugging Face Hub-compatible HTTP server on 127.0.0.1, for tests that use the real client.

It serves a folder of repos: ``root/<repo_id>/`` is revision ``main``; any other revision lives in
``root/<repo_id>@<quoted revision>/``. Commit shas are derived from the content, so they are stable
from run to run. It answers the requests huggingface_hub 2.x makes (read from its source):

- ``HEAD|GET /<repo_id>/resolve/<revision>/<path>`` with ``X-Repo-Commit``, ``ETag`` (git blob sha),
  ``Content-Length`` and ``Range``; a file above ``lfs_threshold`` bytes answers a 302 to the
  "CDN" (same server, reached as ``localhost``: another origin, so the client keeps the
  ``X-Linked-Etag``/``X-Linked-Size`` of the 302 and strips ``Authorization``, as with the real CDN);
- ``GET /api/models/<repo_id>[/revision/<revision>]`` and ``/api/models/<repo_id>/tree/<revision>[/<path>]``;
- errors with ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and
  ``{"error": ...}`` bodies.

Tests script faults (``server.faults.fail(503, times=2)``, ``.drop()``, ``.delay(2)``,
``.truncate(10)``) and read ``server.requests`` to count attempts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import pytest

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_API_MODELS = re.compile(
    r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+)(?P<sub>/.*)?)?$"
)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def git_blob_sha(content: bytes) -> str:
    """The id git (and the Hub, as ETag) gives a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """One revision of one repo, as read from disk."""

    repo_id: str
    revision: str
    folder: Path
    files: tuple[str, ...]
    sha: str

    def read(self, path: str) -> bytes | None:
        if path not in self.files:
            return None
        return (self.folder / path).read_bytes()

    def config(self) -> dict[str, Any] | None:
        raw = self.read("config.json")
        if raw is None:
            return None
        try:
            config = json.loads(raw)
        except ValueError:
            return None
        return config if isinstance(config, dict) else None


@dataclass(frozen=True)
class RepoSettings:
    #: when set, the repo is gated: only ``Authorization: Bearer <access_token>`` may read it
    access_token: str | None = None
    tags: tuple[str, ...] = ()
    #: the real Hub copies part of config.json into model info; False tests the client's fallback
    config_in_info: bool = True
    pipeline_tag: str | None = None  #: the task the Hub lists the model under


class RepoStore:
    """Repos on disk; every read goes to the folder, so tests may also write files directly."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, repo_id: str, revision: str = "main") -> Path:
        if not _REPO_ID.match(repo_id):
            raise ValueError(f"invalid repo id {repo_id!r}")
        if revision == "main":
            return self.root / repo_id
        return self.root / f"{repo_id}@{quote(revision, safe='')}"

    def exists(self, repo_id: str) -> bool:
        return bool(_REPO_ID.match(repo_id)) and self.folder(repo_id).is_dir()

    def add(self, repo_id: str, files: Mapping[str, bytes], revision: str = "main") -> Snapshot:
        folder = self.folder(repo_id, revision)
        for path, content in files.items():
            target = _inside(folder, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return self._read(repo_id, revision, folder)

    def snapshot(self, repo_id: str, revision: str) -> Snapshot | None:
        if not self.exists(repo_id):
            return None
        folder = self.folder(repo_id, revision)
        if folder.is_dir():
            return self._read(repo_id, revision, folder)
        if _SHA1.match(revision):  # a commit sha names whichever revision has that content
            for snapshot in self._all(repo_id):
                if snapshot.sha == revision:
                    return snapshot
        return None

    def _all(self, repo_id: str) -> Iterator[Snapshot]:
        main = self.folder(repo_id)
        yield self._read(repo_id, "main", main)
        for other in sorted(main.parent.glob(f"{main.name}@*")):
            yield self._read(repo_id, unquote(other.name.split("@", 1)[1]), other)

    def _read(self, repo_id: str, revision: str, folder: Path) -> Snapshot:
        files = tuple(sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()))
        digest = hashlib.sha1(repo_id.encode())
        for path in files:
            digest.update(f"\0{path}\0{git_blob_sha((folder / path).read_bytes())}".encode())
        return Snapshot(repo_id, revision, folder, files, digest.hexdigest())


def _inside(folder: Path, path: str) -> Path:
    target = (folder / path).resolve()
    if not target.is_relative_to(folder.resolve()) or path.startswith("/"):
        raise ValueError(f"path {path!r} leaves the repo folder")
    return target


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, applied to requests whose method and path match."""

    action: Literal["status", "drop", "delay", "truncate"]
    method: str | None = None
    #: a substring of the decoded URL path (``"/resolve/"``, ``"/api/models/"``, a file name)
    path: str | None = None
    status: int = 503
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    nbytes: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or self.path in path)


class FaultQueue:
    """Faults in the order queued; each applies ``times`` times (None: forever), the first match wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[Fault, list[int | None]]] = []

    def fail(
        self,
        status: int = 503,
        *,
        times: int | None = 1,
        method: str | None = None,
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._add(Fault("status", method, path, status=status, headers=tuple((headers or {}).items())), times)

    def drop(self, *, times: int | None = 1, method: str | None = None, path: str | None = None) -> None:
        """Close the connection without any response."""
        self._add(Fault("drop", method, path), times)

    def delay(
        self, seconds: float, *, times: int | None = 1, method: str | None = None, path: str | None = None
    ) -> None:
        """Wait, then answer normally (a client with a shorter timeout gives up first)."""
        self._add(Fault("delay", method, path, seconds=seconds), times)

    def truncate(
        self, nbytes: int, *, times: int | None = 1, method: str | None = "GET", path: str | None = None
    ) -> None:
        """Announce the full Content-Length, send ``nbytes`` of the body, close: a broken download."""
        self._add(Fault("truncate", method, path, nbytes=nbytes), times)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault, remaining in self._pending:
                count = remaining[0]
                if fault.matches(method, path) and (count is None or count > 0):
                    if count is not None:
                        remaining[0] = count - 1
                    return fault
        return None

    def _add(self, fault: Fault, times: int | None) -> None:
        with self._lock:
            self._pending.append((fault, [times]))


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    #: header names lower-cased
    headers: Mapping[str, str]
    at: float = field(default_factory=time.monotonic)

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


class HubServer:
    """The running server: its URL, repo folder, fault queue and request log."""

    def __init__(self, root: Path, *, lfs_threshold: int = 1 << 20) -> None:
        self.root = root
        self.store = RepoStore(root)
        self.faults = FaultQueue()
        self.lfs_threshold = lfs_threshold
        self.settings: dict[str, RepoSettings] = {}
        self.stopping = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HubRequestHandler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        #: where large files redirect to: another origin than ``url``, like the real CDN
        self.cdn_url = f"http://localhost:{port}"
        self._thread = threading.Thread(
            # A short poll interval: shutdown waits for it, once per test.
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="hubserver",
            daemon=True,
        )
        self._thread.start()

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        revision: str = "main",
        access_token: str | None = None,
        tags: tuple[str, ...] = (),
        config_in_info: bool = True,
        pipeline_tag: str | None = None,
    ) -> Snapshot:
        if revision == "main" or repo_id not in self.settings:
            self.settings[repo_id] = RepoSettings(access_token, tags, config_in_info, pipeline_tag)
        return self.store.add(repo_id, files, revision)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method) and (path is None or path in r.path)
        )

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def close(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _HubRequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no pooled connection outlives a scripted fault.
    protocol_version = "HTTP/1.0"
    server_version = "hubserver/1"

    @property
    def hub(self) -> HubServer:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        return hub

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read hub.requests instead
        pass

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.hub.record(RecordedRequest(method, path, split.query, headers))
        self._truncate_to: int | None = None
        try:
            fault = self.hub.faults.take(method, path)
            if fault is not None and not self._apply(fault):
                return
            self._route(method, split.path, parse_qs(split.query))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (timeout, scripted delay): nothing to answer

    def _apply(self, fault: Fault) -> bool:
        """Apply a fault; True when the request should then be answered normally."""
        if fault.action == "status":
            self._send_error(fault.status, None, f"scripted {fault.status}", dict(fault.headers))
            return False
        if fault.action == "drop":
            self.close_connection = True
            return False
        if fault.action == "delay":
            self.hub.stopping.wait(fault.seconds)
            return True
        self._truncate_to = fault.nbytes
        return True

    def _route(self, method: str, raw_path: str, query: dict[str, list[str]]) -> None:
        if raw_path.startswith("/api/models/"):
            if method != "GET":
                self._send_error(405, None, "Method not allowed")
                return
            self._api(raw_path, query)
        elif raw_path.startswith("/lfs-cdn/"):
            self._cdn(method, query)
        elif "/resolve/" in raw_path:
            self._resolve(method, raw_path)
        else:
            self._send_error(404, None, "Not Found")

    # -- /{repo}/resolve/{revision}/{path}

    def _resolve(self, method: str, raw_path: str) -> None:
        repo_raw, _, rest = raw_path.partition("/resolve/")
        revision_raw, _, file_raw = rest.partition("/")
        snapshot = self._snapshot(unquote(repo_raw.lstrip("/")), unquote(revision_raw))
        if snapshot is None:
            return
        filename = unquote(file_raw)
        content = snapshot.read(filename)
        if content is None:
            self._send_error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": snapshot.sha})
            return
        etag = git_blob_sha(content)
        common = {"X-Repo-Commit": snapshot.sha, "Accept-Ranges": "bytes"}
        if len(content) > self.hub.lfs_threshold:
            sha256 = hashlib.sha256(content).hexdigest()
            query = urlencode({"repo": snapshot.repo_id, "rev": snapshot.sha, "file": filename})
            self._send(
                302,
                {
                    **common,
                    "Location": f"{self.hub.cdn_url}/lfs-cdn/{sha256}?{query}",
                    "ETag": f'"{etag}"',
                    "X-Linked-Etag": f'"{sha256}"',
                    "X-Linked-Size": str(len(content)),
                },
                b"",
                method,
            )
            return
        self._send_content(method, content, {**common, "ETag": f'"{etag}"'})

    def _cdn(self, method: str, query: dict[str, list[str]]) -> None:
        """The storage a large file redirects to; like the real CDN it needs no token."""
        snapshot = self.hub.store.snapshot(_one(query, "repo"), _one(query, "rev"))
        content = snapshot.read(_one(query, "file")) if snapshot is not None else None
        if content is None:
            self._send_error(404, None, "NoSuchKey")
            return
        self._send_content(method, content, {"ETag": f'"{hashlib.sha256(content).hexdigest()}"'})

    def _send_content(self, method: str, content: bytes, headers: dict[str, str]) -> None:
        requested = self.headers.get("Range")
        if requested is None:
            self._send(200, headers, content, method)
            return
        bounds = _parse_range(requested, len(content))
        if bounds is None:
            self._send_error(416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{len(content)}"})
            return
        start, end = bounds
        headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(content)}"}
        self._send(206, headers, content[start : end + 1], method)

    # -- /api/models/...

    def _api(self, raw_path: str, query: dict[str, list[str]]) -> None:
        match = _API_MODELS.match(raw_path)
        if match is None:
            self._send_error(404, None, "Not Found")
            return
        revision = unquote(match["rev"] or "main")
        snapshot = self._snapshot(unquote(match["repo"]), revision)
        if snapshot is None:
            return
        if match["kind"] == "tree":
            sub = unquote(match["sub"] or "").strip("/")
            recursive = _one(query, "recursive", "false").lower() == "true"
            self._tree(snapshot, sub, recursive)
            return
        self._send_json(200, self._model_info(snapshot))

    def _model_info(self, snapshot: Snapshot) -> dict[str, Any]:
        settings = self.hub.settings.get(snapshot.repo_id, RepoSettings())
        info: dict[str, Any] = {
            "_id": snapshot.sha[:24],
            "id": snapshot.repo_id,
            "modelId": snapshot.repo_id,
            "sha": snapshot.sha,
            "private": False,
            "gated": "manual" if settings.access_token else False,
            "disabled": False,
            "tags": list(settings.tags),
            "siblings": [{"rfilename": path} for path in snapshot.files],
        }
        if settings.pipeline_tag:
            info["pipeline_tag"] = settings.pipeline_tag
        config = snapshot.config()
        if config is not None and settings.config_in_info:
            info["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
        return info

    def _tree(self, snapshot: Snapshot, sub: str, recursive: bool) -> None:
        prefix = f"{sub}/" if sub else ""
        below = [path for path in snapshot.files if path.startswith(prefix)]
        if sub and not below:
            self._send_error(404, "EntryNotFound", f"{sub} does not exist on {snapshot.revision}")
            return
        entries: dict[str, dict[str, Any]] = {}
        for path in below:
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(
                        folder, {"type": "directory", "oid": git_blob_sha(folder.encode()), "path": folder}
                    )
            if recursive or len(parts) == 1:
                entries[path] = self._file_entry(snapshot, path)
        self._send_json(200, [entries[key] for key in sorted(entries)])

    def _file_entry(self, snapshot: Snapshot, path: str) -> dict[str, Any]:
        content = snapshot.read(path) or b""
        entry: dict[str, Any] = {
            "type": "file",
            "oid": git_blob_sha(content),
            "size": len(content),
            "path": path,
        }
        if len(content) > self.hub.lfs_threshold:
            entry["lfs"] = {
                "oid": hashlib.sha256(content).hexdigest(),
                "size": len(content),
                "pointerSize": 134,
            }
        return entry

    # -- shared

    def _snapshot(self, repo_id: str, revision: str) -> Snapshot | None:
        """The revision asked for, or None after answering the error the Hub would give."""
        if not self.hub.store.exists(repo_id):
            self._send_error(404, "RepoNotFound", "Repository not found")
            return None
        settings = self.hub.settings.get(repo_id, RepoSettings())
        if settings.access_token is not None:
            given = self.headers.get("Authorization")
            if given != f"Bearer {settings.access_token}":
                status = 401 if given is None else 403
                message = f"Access to model {repo_id} is restricted. You must be authenticated to access it."
                self._send_error(status, "GatedRepo", message)
                return None
        snapshot = self.hub.store.snapshot(repo_id, revision)
        if snapshot is None:
            self._send_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return snapshot

    def _send_error(
        self, status: int, code: str | None, message: str, extra: Mapping[str, str] | None = None
    ) -> None:
        headers = {"X-Error-Message": message, **(extra or {})}
        if code is not None:
            headers["X-Error-Code"] = code
        self._send_json(status, {"error": message}, headers)

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._send(status, {"Content-Type": "application/json", **(headers or {})}, body, self.command)

    def _send(self, status: int, headers: Mapping[str, str], body: bytes, method: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method == "HEAD":
            return
        if self._truncate_to is not None:
            self.wfile.write(body[: self._truncate_to])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


def _one(query: dict[str, list[str]], name: str, default: str = "") -> str:
    return query.get(name, [default])[0]


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Inclusive (start, end) of a single ``bytes=`` range, or None when unsatisfiable."""
    match = _RANGE.match(header.strip())
    if match is None or match[1] == match[2] == "":
        return None
    if match[1] == "":  # suffix range: the last N bytes
        start, end = max(size - int(match[2]), 0), size - 1
    else:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    return (start, end) if start <= end and start < size else None


# -- fixtures


@pytest.fixture
def hub_server(tmp_path: Path) -> Iterator[HubServer]:
    """A fresh hub on 127.0.0.1 over ``tmp_path/hub`` with small files served inline, large ones via LFS."""
    root = tmp_path / "hub"
    root.mkdir()
    server = HubServer(root, lfs_threshold=4096)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def hub_env(hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """Point our client at ``hub_server`` with a private HF cache and short retry delays.

    huggingface_hub reads HF_ENDPOINT (and HF_HUB_OFFLINE, HF_HUB_DISABLE_XET) once at import, so these
    variables reach it only through our client, which reads them when it is constructed.
    """
    hf_home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("HFMODELS_RETRY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HFMODELS_RETRY_BASE_DELAY", "0.01")
    monkeypatch.setenv("HFMODELS_RETRY_MAX_DELAY", "0.05")
    monkeypatch.setenv("HFMODELS_RETRY_JITTER", "0")
    monkeypatch.setenv("HFMODELS_RETRY_MAX_RETRIES", "3")
    monkeypatch.setenv("HFMODELS_RETRY_TOTAL_TIMEOUT", "10")
    monkeypatch.setenv("HFMODELS_RETRY_REQUEST_TIMEOUT", "5")
    return hub_server
