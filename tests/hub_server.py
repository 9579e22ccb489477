"""A local stand-in for the Hugging Face Hub, for tests that must not reach the internet.

`HubServer` implements, in memory, the part of the Hub HTTP API that the installed `huggingface_hub` client uses
to create repos, commit files (``preupload`` + ``commit``, every file answered as ``"regular"`` so the client
inlines it as base64: no LFS nor Xet transfer), tag/branch, list and download (``resolve``). Error responses carry
the ``X-Error-Code`` headers from which the client builds its exception classes.

Fixtures (import them in ``conftest.py`` with ``from hub_server import *``):

- ``hub_server`` (session): the running `HubServer`;
- ``hub`` (function): a `HubEnv`; the real `huggingface_hub` client (and diffusers) talks to the server for the
  rest of the test, with the owner token of the ``org`` namespace and an empty cache; ``hub.env`` gives the same
  setup to a subprocess and ``hub.offline()`` turns offline mode on.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote

import huggingface_hub.utils._cache_assets  # noqa: F401 - imported now so that their copies get patched
import huggingface_hub.utils._cache_manager  # noqa: F401
import huggingface_hub.utils._git_credential  # noqa: F401
import pytest
from huggingface_hub import constants, hf_api
from huggingface_hub.utils import _http

__all__ = ["HubEnv", "HubError", "HubServer", "hub", "hub_server"]

DEFAULT_TOKENS = {"hf_write_org": "org", "hf_other": "someone"}

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_SPACE_SDKS = ("gradio", "streamlit", "docker", "static")
_GITATTRIBUTES = b"".join(
    b"%s filter=lfs diff=lfs merge=lfs -text\n" % pattern
    for pattern in (b"*.bin", b"*.ckpt", b"*.pt", b"*.pth", b"*.safetensors")
)
_REPO = r"/api/(?P<plural>models|datasets|spaces)/(?P<repo_id>[^/]+/[^/]+)"

Response = tuple[int, dict[str, str], bytes]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _git_oid(content: bytes) -> str:
    """Git blob id: what the Hub uses as ETag and tree ``oid`` of a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _json(payload: object, status: int = 200) -> Response:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


class HubError(Exception):
    """An error answer: ``X-Error-Code``/``X-Error-Message`` headers and a ``{"error": ..., **extra}`` body."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.extra = status, message, code, headers or {}, extra

    def response(self) -> Response:
        headers = {**self.headers, "X-Error-Message": self.message}
        if self.code:
            headers["X-Error-Code"] = self.code
        status, json_headers, body = _json({"error": self.message, **self.extra}, self.status)
        return status, {**json_headers, **headers}, body


@dataclass
class _Commit:
    oid: str
    parent: str | None
    files: dict[str, bytes]  # full snapshot: path -> content
    title: str
    message: str
    author: str
    date: str = field(default_factory=_now)


@dataclass
class _Repo:
    type: str
    id: str
    private: bool
    sdk: str | None
    created_at: str = field(default_factory=_now)
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        return self.id.split("/")[0]


@dataclass
class _Request:
    user: str | None
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body or b"{}")


class HubServer:
    """In-memory Hub served over HTTP on ``127.0.0.1`` (free port) from a background thread.

    ``tokens`` maps valid bearer tokens to user names; a user may write only to its own namespace and is the only
    one to see its private repos. ``token`` and ``other_token`` are the first two tokens (by default: of the users
    ``org`` and ``someone``).
    """

    _ROUTES = [
        ("GET", r"/api/whoami-v2", "_whoami"),
        ("GET", r"/api/agent-harnesses", "_agent_harnesses"),
        ("POST", r"/api/validate-yaml", "_validate_yaml"),
        ("POST", r"/api/repos/create", "_create_repo"),
        ("DELETE", r"/api/repos/delete", "_delete_repo"),
        ("GET", _REPO + r"(?:/revision/(?P<rev>[^/]+))?", "_repo_info"),
        ("GET", _REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", "_tree"),
        ("POST", _REPO + r"/paths-info/(?P<rev>[^/]+)", "_paths_info"),
        ("GET", _REPO + r"/refs", "_refs"),
        ("GET", _REPO + r"/commits/(?P<rev>[^/]+)", "_commits"),
        ("POST", _REPO + r"/preupload/(?P<rev>[^/]+)", "_preupload"),
        ("POST", _REPO + r"/commit/(?P<rev>[^/]+)", "_commit"),
        ("POST", _REPO + r"/(?P<kind>tag|branch)/(?P<rev>[^/]+)", "_create_ref"),
        ("DELETE", _REPO + r"/(?P<kind>tag|branch)/(?P<name>[^/]+)", "_delete_ref"),
        ("GET", r"/(?:(?P<plural>datasets|spaces)/)?(?P<repo_id>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
         "_resolve"),
    ]

    def __init__(self, tokens: dict[str, str] | None = None):
        self.tokens = dict(tokens or DEFAULT_TOKENS)
        self.token, self.other_token = list(self.tokens)[:2]
        self._routes = [(method, re.compile(pattern), getattr(self, name)) for method, pattern, name in self._ROUTES]
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def reset(self) -> None:
        """Forget every repo."""
        with self._lock:
            self._repos.clear()

    # -- dispatch -------------------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Answer one HTTP request (``target`` is the raw path with its query string)."""
        path, _, query = target.partition("?")
        try:
            request = _Request(
                self._user(headers.get("Authorization")),
                {key: values[-1] for key, values in parse_qs(query).items()},
                headers,
                body,
            )
            for route_method, pattern, func in self._routes:
                same_method = method == route_method or (method, route_method) == ("HEAD", "GET")
                match = pattern.fullmatch(path) if same_method else None
                if match:
                    groups = {key: unquote(value) for key, value in match.groupdict().items() if value is not None}
                    with self._lock:
                        return func(request, **groups)
            raise HubError(404, f"Sorry, we can't find the page you are looking for ({method} {path})")
        except HubError as error:
            return error.response()
        except (KeyError, TypeError, ValueError) as error:  # malformed payload: fail fast (5xx would be retried)
            return HubError(400, f"Malformed request: {error!r}").response()

    def _user(self, authorization: str | None) -> str | None:
        if not authorization:
            return None
        user = self.tokens.get(authorization.removeprefix("Bearer ").strip())
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    # -- helpers ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _check_write(user: str | None, namespace: str, target: str) -> None:
        if user is None:
            raise HubError(401, "Invalid username or password.")
        if user != namespace:
            raise HubError(403, f"You don't have the rights to write to {target}")

    def _get_repo(self, request: _Request, plural: str | None, repo_id: str, write: bool = False) -> _Repo:
        repo = self._repos.get((_TYPES[plural or "models"], repo_id))
        if repo is None or (repo.private and request.user != repo.owner):
            if request.user is None:  # the Hub answers 401 to anonymous users, 404 to authenticated ones
                raise HubError(401, "Invalid username or password.", "RepoNotFound")
            raise HubError(404, "Repository not found", "RepoNotFound")
        if write:
            self._check_write(request.user, repo.owner, repo.id)
        return repo

    @staticmethod
    def _find_commit(repo: _Repo, rev: str) -> _Commit:
        """Resolve a branch, a tag or a (possibly abbreviated) commit sha."""
        oid = repo.branches.get(rev) or repo.tags.get(rev)
        if oid is None:
            matches = [oid for oid in repo.commits if len(rev) >= 7 and oid.startswith(rev.lower())]
            oid = matches[0] if len(matches) == 1 else None
        if oid is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo.commits[oid]

    def _add_commit(self, repo: _Repo, branch: str, files: dict[str, bytes], title: str, message: str,
                    author: str) -> str:
        parent = repo.branches.get(branch)
        listing = sorted((path, _git_oid(content)) for path, content in files.items())
        oid = hashlib.sha1(json.dumps([parent, listing, title, message, next(self._seq)]).encode()).hexdigest()
        repo.commits[oid] = _Commit(oid, parent, files, title, message, author)
        repo.branches[branch] = oid
        return oid

    def _repo_url(self, repo: _Repo) -> str:
        return f"{self.url}/{_URL_PREFIXES[repo.type]}{repo.id}"

    @staticmethod
    def _file_entry(path: str, content: bytes) -> dict:
        return {"type": "file", "oid": _git_oid(content), "size": len(content), "path": path}

    @staticmethod
    def _folder_entry(files: dict[str, bytes], folder: str) -> dict:
        listing = sorted((path, _git_oid(data)) for path, data in files.items() if path.startswith(folder + "/"))
        return {"type": "directory", "oid": hashlib.sha1(json.dumps(listing).encode()).hexdigest(), "path": folder}

    # -- routes -----------------------------------------------------------------------------------------------------

    def _whoami(self, request: _Request) -> Response:
        if request.user is None:
            raise HubError(401, "Invalid username or password.")
        return _json({
            "type": "user", "id": request.user, "name": request.user, "fullname": request.user, "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}},
        })

    def _agent_harnesses(self, request: _Request) -> Response:
        return _json({"standardEnvVars": [], "harnesses": {}})

    def _validate_yaml(self, request: _Request) -> Response:
        return _json({"errors": [], "warnings": []})

    def _create_repo(self, request: _Request) -> Response:
        data = request.json()
        repo_type = data.get("type") or "model"
        namespace = data.get("organization") or request.user
        self._check_write(request.user, namespace, namespace)
        repo_id = f"{namespace}/{data['name']}"
        url = f"{self.url}/{_URL_PREFIXES[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self._repos:
            raise HubError(409, f"You already created this {repo_type} repo", url=url)  # client reads `url`
        sdk = data.get("sdk")
        if repo_type == "space" and sdk not in _SPACE_SDKS:
            raise HubError(400, f"Invalid sdk {sdk!r}: expected one of {_SPACE_SDKS}")
        private = data.get("visibility") == "private" or data.get("private") is True
        repo = self._repos[repo_type, repo_id] = _Repo(repo_type, repo_id, private, sdk)
        files = {".gitattributes": _GITATTRIBUTES}
        if repo_type == "space":
            files["README.md"] = f"---\ntitle: {data['name']}\nsdk: {sdk}\npinned: false\n---\n".encode()
        self._add_commit(repo, "main", files, "initial commit", "", request.user)
        return _json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, request: _Request) -> Response:
        data = request.json()
        repo = self._get_repo(request, (data.get("type") or "model") + "s",
                              f"{data.get('organization') or request.user}/{data['name']}", write=True)
        del self._repos[repo.type, repo.id]
        return _json({})

    def _repo_info(self, request: _Request, plural: str, repo_id: str, rev: str = "main") -> Response:
        repo = self._get_repo(request, plural, repo_id)
        commit = self._find_commit(repo, rev)
        info = {
            "id": repo.id, "author": repo.owner, "sha": commit.oid, "private": repo.private, "gated": False,
            "disabled": False, "createdAt": repo.created_at, "lastModified": commit.date, "likes": 0,
            "downloads": 0, "tags": [],
            "siblings": [
                {"rfilename": path, "size": len(data), "blobId": _git_oid(data)}
                for path, data in sorted(commit.files.items())
            ],
        }
        if repo.type == "space":
            info["sdk"] = repo.sdk
        return _json(info)

    def _tree(self, request: _Request, plural: str, repo_id: str, rev: str, path: str = "") -> Response:
        commit = self._find_commit(self._get_repo(request, plural, repo_id), rev)
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        files = {name: data for name, data in commit.files.items() if name.startswith(prefix)}
        if prefix and not files:
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        recursive = request.params.get("recursive", "").lower() in ("1", "true")
        folders, entries = set(), []
        for name in sorted(files):
            parts = name[len(prefix):].split("/")
            depth = len(parts) - 1 if recursive else min(len(parts) - 1, 1)
            folders.update(prefix + "/".join(parts[:i]) for i in range(1, depth + 1))
            if recursive or len(parts) == 1:
                entries.append(self._file_entry(name, files[name]))
        return _json([self._folder_entry(files, folder) for folder in sorted(folders)] + entries)

    def _paths_info(self, request: _Request, plural: str, repo_id: str, rev: str) -> Response:
        commit = self._find_commit(self._get_repo(request, plural, repo_id), rev)
        entries = []
        for path in parse_qs(request.body.decode()).get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                entries.append(self._file_entry(path, commit.files[path]))
            elif any(name.startswith(path + "/") for name in commit.files):
                entries.append(self._folder_entry(commit.files, path))
        return _json(entries)

    def _refs(self, request: _Request, plural: str, repo_id: str) -> Response:
        repo = self._get_repo(request, plural, repo_id)

        def refs(kind: str, names: dict[str, str]) -> list[dict]:
            return [{"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid} for name, oid in names.items()]

        return _json({"branches": refs("heads", repo.branches), "tags": refs("tags", repo.tags), "converts": [],
                      "pullRequests": []})

    def _commits(self, request: _Request, plural: str, repo_id: str, rev: str) -> Response:
        repo = self._get_repo(request, plural, repo_id)
        commit, history = self._find_commit(repo, rev), []
        while commit is not None:
            history.append({"id": commit.oid, "title": commit.title, "message": commit.message,
                            "authors": [{"user": commit.author}], "date": commit.date})
            commit = repo.commits.get(commit.parent)
        return _json(history)

    def _preupload(self, request: _Request, plural: str, repo_id: str, rev: str) -> Response:
        commit = self._find_commit(self._get_repo(request, plural, repo_id, write=True), rev)
        return _json({"files": [
            {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": _git_oid(commit.files[item["path"]]) if item["path"] in commit.files else None}
            for item in request.json()["files"]
        ]})

    def _commit(self, request: _Request, plural: str, repo_id: str, rev: str) -> Response:
        repo = self._get_repo(request, plural, repo_id, write=True)
        if request.params.get("create_pr"):
            raise HubError(400, "Pull requests are not supported by this test server")
        if rev not in repo.branches:
            raise HubError(404, f"Invalid rev id: {rev} is not a branch", "RevisionNotFound")
        header, *operations = [json.loads(line) for line in request.body.splitlines() if line.strip()]
        if header.get("key") != "header":
            raise HubError(400, "The first line of a commit payload must be its header")
        head = repo.commits[repo.branches[rev]]
        parent = header["value"].get("parentCommit")
        if parent and not head.oid.startswith(parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for operation in operations:
            key, value = operation["key"], operation["value"]
            if key == "file":
                content = value["content"]
                base64_encoded = value.get("encoding") == "base64"
                files[value["path"]] = base64.b64decode(content) if base64_encoded else content.encode()
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                doomed = [name for name in files if name.startswith(value["path"].rstrip("/") + "/")]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {value['path']}", "EntryNotFound")
                for name in doomed:
                    del files[name]
            else:
                raise HubError(400, f"Unsupported commit operation {key!r}: this server only takes regular files")
        oid = self._add_commit(repo, rev, files, header["value"]["summary"],
                               header["value"].get("description", ""), request.user)
        return _json({"success": True, "commitOid": oid, "commitUrl": f"{self._repo_url(repo)}/commit/{oid}",
                      "pullRequestUrl": None})

    def _create_ref(self, request: _Request, plural: str, repo_id: str, kind: str, rev: str) -> Response:
        repo = self._get_repo(request, plural, repo_id, write=True)
        data = request.json()
        if kind == "tag":  # POST /tag/{revision to tag} {"tag": name}
            refs, name, target = repo.tags, data["tag"], rev
        else:  # POST /branch/{new branch} {"startingPoint": revision}
            refs, name, target = repo.branches, rev, data.get("startingPoint") or "main"
        if name in refs:
            raise HubError(409, f"{kind.capitalize()} {name} already exists")
        refs[name] = self._find_commit(repo, target).oid
        return _json({})

    def _delete_ref(self, request: _Request, plural: str, repo_id: str, kind: str, name: str) -> Response:
        repo = self._get_repo(request, plural, repo_id, write=True)
        refs = repo.tags if kind == "tag" else repo.branches
        if refs.pop(name, None) is None:
            raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
        return _json({})

    def _resolve(self, request: _Request, repo_id: str, rev: str, path: str, plural: str | None = None) -> Response:
        commit = self._find_commit(self._get_repo(request, plural, repo_id), rev)
        data = commit.files.get(path)
        if data is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                   "ETag": f'"{_git_oid(data)}"', "X-Repo-Commit": commit.oid}
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range") or "")
        if match is None:
            return 200, headers, data
        start, end = int(match[1]), int(match[2] or len(data) - 1)
        headers["Content-Range"] = f"bytes {start}-{min(end, len(data) - 1)}/{len(data)}"
        return 206, headers, data[start : end + 1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries a Content-Length

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, payload = self.server.hub.handle(self.command, self.path, self.headers, body)
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(payload))}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_DELETE = _serve

    def log_message(self, *args) -> None:  # quiet test output
        pass


# -- pointing the client at the server ----------------------------------------------------------------------------

# Copies of `huggingface_hub.constants` values that other modules took at import time, by constant name.
_MIRRORS = {
    "ENDPOINT": [
        ("huggingface_hub.utils._git_credential", "ENDPOINT"),
        ("diffusers.utils.constants", "HUGGINGFACE_CO_RESOLVE_ENDPOINT"),
        ("diffusers.utils", "HUGGINGFACE_CO_RESOLVE_ENDPOINT"),
        ("diffusers.utils.hub_utils", "HUGGINGFACE_CO_RESOLVE_ENDPOINT"),
        ("diffusers.configuration_utils", "HUGGINGFACE_CO_RESOLVE_ENDPOINT"),
        ("diffusers.modular_pipelines.mellon_node_utils", "HUGGINGFACE_CO_RESOLVE_ENDPOINT"),
    ],
    "HF_HUB_CACHE": [("huggingface_hub.utils._cache_manager", "HF_HUB_CACHE")],
    "HF_ASSETS_CACHE": [("huggingface_hub.utils._cache_assets", "HF_ASSETS_CACHE")],
    "HF_HUB_OFFLINE": [
        ("diffusers.utils.hub_utils", "HF_HUB_OFFLINE"),
        ("diffusers.loaders.lora_base", "HF_HUB_OFFLINE"),
        ("diffusers.models.attention_dispatch", "HF_HUB_OFFLINE"),
    ],
    "HF_HUB_DISABLE_TELEMETRY": [("diffusers.utils.hub_utils", "HF_HUB_DISABLE_TELEMETRY")],
}


class HubEnv:
    """`huggingface_hub` (and diffusers) pointed at a `HubServer` for one test; made by the ``hub`` fixture.

    Attributes: ``server``, ``url``, ``token`` (owner of ``namespace``, also exported as ``HF_TOKEN``),
    ``other_token``, ``namespace`` (``"org"``), ``home`` (``HF_HOME``) and ``cache_dir`` (``HF_HUB_CACHE``, empty at
    the start of the test).
    """

    def __init__(self, server: HubServer, home: Path, monkeypatch: pytest.MonkeyPatch):
        self.server, self.url, self.token, self.other_token = server, server.url, server.token, server.other_token
        self.namespace = server.tokens[server.token]
        self.home, self.cache_dir = home, home / "hub"
        self._monkeypatch = monkeypatch
        self._patched: set[tuple[str, str]] = set()
        self._originals: dict[str, object] = {}

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess (CLI, script) that must use the same server, token and cache."""
        return dict(os.environ)

    def offline(self) -> None:
        """Switch offline mode on (``HF_HUB_OFFLINE=1``) for the rest of the test."""
        self._monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        self._set_constant("HF_HUB_OFFLINE", True)

    def _set_constant(self, name: str, value: object) -> None:
        """Patch a `huggingface_hub.constants` value and its already-imported copies in other modules."""
        self._originals.setdefault(name, getattr(constants, name))
        self._monkeypatch.setattr(constants, name, value)
        for module, attr in _MIRRORS.get(name, ()):
            if module in sys.modules:
                self._monkeypatch.setattr(sys.modules[module], attr, value)
                self._patched.add((module, attr))

    def _setup(self) -> None:
        home, cache = str(self.home), str(self.cache_dir)
        env = {
            "HF_ENDPOINT": self.url, "HF_HOME": home, "HF_HUB_CACHE": cache, "HF_TOKEN": self.token,
            "HF_ASSETS_CACHE": f"{home}/assets", "HF_XET_CACHE": f"{home}/xet",
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        }
        for name, value in env.items():
            self._monkeypatch.setenv(name, value)
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN_PATH", "HUGGINGFACE_HUB_CACHE"):
            self._monkeypatch.delenv(name, raising=False)

        old_home = constants.HF_HOME
        values: dict[str, object] = {  # every path derived from HF_HOME (token, stored tokens, caches, ...)
            name: home + value[len(old_home):]
            for name, value in vars(constants).items()
            if name.isupper() and isinstance(value, str) and value.startswith(old_home)
        }
        values.update(
            ENDPOINT=self.url,
            HUGGINGFACE_CO_URL_TEMPLATE=self.url + "/{repo_id}/resolve/{revision}/{filename}",
            HF_URL_HOSTS=constants.HF_URL_HOSTS | {"127.0.0.1"},
            HF_HOME=home, HF_HUB_CACHE=cache, HUGGINGFACE_HUB_CACHE=cache,
            HF_ASSETS_CACHE=env["HF_ASSETS_CACHE"], HF_XET_CACHE=env["HF_XET_CACHE"],
            HF_TOKEN_PATH=f"{home}/token", HF_STORED_TOKENS_PATH=f"{home}/stored_tokens",
            HF_HUB_OFFLINE=False, HF_HUB_DISABLE_TELEMETRY=True, HF_HUB_DISABLE_UPDATE_CHECK=True,
        )
        for name, value in values.items():
            self._set_constant(name, value)
        self._monkeypatch.setattr(hf_api.api, "endpoint", self.url)  # the instance behind `huggingface_hub.<func>`
        self._monkeypatch.setattr(_http, "_HUB_ORIGINS", _http._HUB_ORIGINS | {_http._url_origin(self.url)})

    def _teardown(self) -> None:
        """Reset copies in modules first imported during the test: they took patched values monkeypatch won't undo."""
        for name, original in self._originals.items():
            for module, attr in _MIRRORS.get(name, ()):
                if module in sys.modules and (module, attr) not in self._patched:
                    setattr(sys.modules[module], attr, original)


@pytest.fixture(scope="session")
def hub_server():
    """A running `HubServer` shared by the session; the ``hub`` fixture empties it before each test."""
    server = HubServer().start()
    yield server
    server.stop()


@pytest.fixture
def hub(hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point `huggingface_hub` at an emptied ``hub_server``, with the ``org`` token and a fresh cache."""
    hub_server.reset()
    env = HubEnv(hub_server, tmp_path / "hf_home", monkeypatch)
    env._setup()
    yield env
    env._teardown()
