"""hub.client against a real HTTP server on 127.0.0.1, through the real huggingface_hub client."""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
import pytest

from pytest_hfmodels.errors import (
    ModelAccessError,
    ModelConnectionError,
    ModelFileNotFoundError,
    ModelNotCachedError,
    ModelUnavailableError,
    ModelVerificationError,
    OptionError,
)
from pytest_hfmodels.hub.client import HubClient, RetryPolicy, cached_snapshot_path

if TYPE_CHECKING:
    from tests.hubserver import HubServer, Snapshot

pytest_plugins = ("tests.hubserver",)

REPO = "org/bert-tiny"
CONFIG = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 32}
LARGE = bytes(range(256)) * 40  # 10 KiB: above the fixture's 4 KiB LFS threshold
TOKEN = "hf_SECRETtoken123"
FAST = RetryPolicy(
    max_retries=3, base_delay=0.01, max_delay=0.05, total_timeout=10, request_timeout=5, jitter=0
)


@pytest.fixture
def repo(hub_env: HubServer) -> Snapshot:
    return hub_env.add_repo(
        REPO,
        {
            "config.json": json.dumps(CONFIG).encode(),
            "model.onnx": b"onnx-bytes-" * 10,
            "model.safetensors": LARGE,
            "onnx/decoder.onnx": b"decoder",
        },
        tags=("transformers", "bert"),
    )


@pytest.fixture
def client(hub_env: HubServer) -> HubClient:
    return HubClient()


def hub_file_requests(hub: HubServer, method: str, filename: str) -> int:
    return hub.count(method, f"/resolve/main/{filename}")


# -- answers: present, missing file / repo / revision


def test_present_and_missing_file(client: HubClient, repo: Snapshot) -> None:
    assert client.file_exists(REPO, "model.onnx")
    found = client.lookup(REPO, "model.onnx")
    assert (found.exists, found.commit_sha, found.size, found.from_cache) == (True, repo.sha, 110, False)

    missing = client.lookup(REPO, "nope.onnx")
    assert (missing.exists, missing.missing) == (False, "file")
    assert "nope.onnx" in (missing.reason or "")
    assert not client.file_exists(REPO, "nope.onnx")


def test_missing_file_download_names_repo_revision_and_file(
    client: HubClient, repo: Snapshot, hub_env: HubServer
) -> None:
    with pytest.raises(ModelFileNotFoundError) as info:
        client.download(REPO, "nope.onnx")
    message = str(info.value)
    assert "file 'nope.onnx' not found in repo 'org/bert-tiny' at revision 'main'" in message
    assert "RemoteEntryNotFoundError" in message  # the last cause
    assert hub_file_requests(hub_env, "HEAD", "nope.onnx") == 1  # a 404 is an answer: never retried


OUT_OF_REPO = ["../../etc/passwd", "/etc/passwd", "onnx//model.onnx", "onnx\\model.onnx", ""]


@pytest.mark.parametrize("path", OUT_OF_REPO)
def test_a_path_out_of_the_repo_is_refused_before_any_request(
    client: HubClient, repo: Snapshot, hub_env: HubServer, path: str
) -> None:
    before = hub_env.count()
    for call in (client.lookup, client.download, client.file_exists):
        with pytest.raises(ModelVerificationError, match=r"repo 'org/bert-tiny': .*repo file path"):
            call(REPO, path)
    assert hub_env.count() == before


def test_missing_repo_is_told_apart(client: HubClient, hub_env: HubServer) -> None:
    assert client.lookup("org/nope", "model.onnx").missing == "repo"
    with pytest.raises(ModelFileNotFoundError, match=r"repository 'org/nope' not found") as info:
        client.download("org/nope", "model.onnx")
    assert "file 'model.onnx'" in str(info.value)
    with pytest.raises(ModelFileNotFoundError, match=r"repository 'org/nope' not found"):
        client.model_metadata("org/nope")
    assert len(hub_env.requests) == 3  # one each


def test_missing_revision_is_told_apart(client: HubClient, repo: Snapshot) -> None:
    assert client.lookup(REPO, "model.onnx", revision="v9").missing == "revision"
    with pytest.raises(ModelFileNotFoundError, match=r"revision 'v9' not found in repo 'org/bert-tiny'"):
        client.download(REPO, "model.onnx", revision="v9")
    with pytest.raises(ModelFileNotFoundError, match=r"revision 'v9' not found in repo 'org/bert-tiny'"):
        client.model_metadata(REPO, revision="v9")


def test_other_revisions_and_commit_shas_resolve(
    client: HubClient, repo: Snapshot, hub_env: HubServer
) -> None:
    v2 = hub_env.add_repo(REPO, {"config.json": b'{"model_type": "roberta"}'}, revision="v2")
    assert client.model_metadata(REPO, revision="v2").model_type == "roberta"
    assert client.model_metadata(REPO, revision=v2.sha).sha == v2.sha
    assert client.download(REPO, "config.json", revision=repo.sha).parent.name == repo.sha


# -- metadata


def test_model_metadata_from_model_info(client: HubClient, repo: Snapshot, hub_env: HubServer) -> None:
    metadata = client.model_metadata(REPO)
    assert metadata.sha == repo.sha
    assert (metadata.model_type, metadata.architectures) == ("bert", ("BertForMaskedLM",))
    assert metadata.files == ("config.json", "model.onnx", "model.safetensors", "onnx/decoder.onnx")
    assert metadata.has_onnx and metadata.onnx_files == ("model.onnx", "onnx/decoder.onnx")
    assert metadata.tags == ("transformers", "bert") and not metadata.from_cache
    assert hub_file_requests(hub_env, "GET", "config.json") == 0


def test_model_metadata_reads_config_json_when_info_lacks_it(client: HubClient, hub_env: HubServer) -> None:
    hub_env.add_repo(
        "org/plain", {"config.json": b'{"model_type": "gpt2"}', "x.bin": b"1"}, config_in_info=False
    )
    metadata = client.model_metadata("org/plain")
    assert (metadata.model_type, metadata.has_onnx) == ("gpt2", False)
    assert hub_env.count("GET", "/resolve/main/config.json") == 1


# -- retries


def test_two_503_then_success(client: HubClient, repo: Snapshot, hub_env: HubServer) -> None:
    hub_env.faults.fail(503, times=2, method="HEAD", path="model.onnx")
    path = client.download(REPO, "model.onnx")
    assert path.read_bytes() == b"onnx-bytes-" * 10
    # three attempts of our HEAD (two 503s, one 200), then hf_hub_download's own HEAD and GET
    assert hub_file_requests(hub_env, "HEAD", "model.onnx") == 4
    assert hub_file_requests(hub_env, "GET", "model.onnx") == 1

    hub_env.faults.fail(502, times=2, path="/api/models/")
    assert client.model_metadata(REPO).model_type == "bert"
    assert hub_env.count("GET", "/api/models/") == 3


def test_retry_after_is_honoured(client: HubClient, repo: Snapshot, hub_env: HubServer) -> None:
    hub_env.faults.fail(429, times=1, path="/api/models/", headers={"Retry-After": "1"})
    started = time.monotonic()
    client.model_metadata(REPO)
    assert time.monotonic() - started >= 1.0
    first, second = [r for r in hub_env.requests if r.path.startswith("/api/models/")]
    assert second.at - first.at >= 1.0  # base_delay is 0.01 s: only Retry-After explains the wait


def test_dropped_connection_is_retried(client: HubClient, repo: Snapshot, hub_env: HubServer) -> None:
    hub_env.faults.drop(times=1, method="HEAD")
    assert client.file_exists(REPO, "model.onnx")
    assert hub_file_requests(hub_env, "HEAD", "model.onnx") == 2


def test_slow_answer_times_out_and_is_retried(repo: Snapshot, hub_env: HubServer) -> None:
    hub_env.faults.delay(3, times=1, path="/api/models/")
    client = HubClient(policy=RetryPolicy(max_retries=2, base_delay=0.01, request_timeout=0.3, jitter=0))
    assert client.model_metadata(REPO).sha == repo.sha
    assert hub_env.count("GET", "/api/models/") == 2


def test_always_failing_hub_gives_connection_error(
    client: HubClient, repo: Snapshot, hub_env: HubServer
) -> None:
    hub_env.faults.fail(503, times=None)
    started = time.monotonic()
    with pytest.raises(ModelConnectionError) as info:
        client.download(REPO, "model.onnx")
    assert time.monotonic() - started < 5  # 3 retries of at most 0.05 s each
    message = str(info.value)
    assert "after 4 attempts" in message and "503" in message
    assert "repo 'org/bert-tiny', revision 'main', file 'model.onnx'" in message
    assert hub_file_requests(hub_env, "HEAD", "model.onnx") == 4


def test_total_timeout_bounds_the_retries(repo: Snapshot, hub_env: HubServer) -> None:
    hub_env.faults.fail(500, times=None)
    policy = RetryPolicy(max_retries=1000, base_delay=0.05, max_delay=0.05, total_timeout=0.5, jitter=0)
    started = time.monotonic()
    with pytest.raises(ModelConnectionError, match="total timeout would be exceeded"):
        HubClient(policy=policy).model_metadata(REPO)
    assert time.monotonic() - started < 3


def test_unreachable_hub_gives_connection_error(tmp_path: Path, hub_env: HubServer) -> None:
    client = HubClient(endpoint="http://127.0.0.1:9", policy=FAST)  # discard port: nothing listens
    with pytest.raises(ModelConnectionError, match=r"after 4 attempts.*ConnectError"):
        client.file_exists(REPO, "model.onnx")


def test_no_retry_on_401_or_gated(client: HubClient, repo: Snapshot, hub_env: HubServer) -> None:
    hub_env.faults.fail(401, times=1, method="HEAD")
    with pytest.raises(ModelAccessError, match="access denied"):
        client.download(REPO, "model.onnx")
    assert hub_file_requests(hub_env, "HEAD", "model.onnx") == 1

    hub_env.add_repo("org/gated", {"config.json": b"{}"}, access_token=TOKEN)
    with pytest.raises(ModelAccessError, match="org/gated"):
        client.model_metadata("org/gated")
    assert HubClient(token=TOKEN).model_metadata("org/gated").files == ("config.json",)


# -- the token


def test_token_is_sent_but_never_shown(
    repo: Snapshot, hub_env: HubServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    client = HubClient(token=TOKEN, policy=FAST)
    hub_env.add_repo("org/gated", {"config.json": b"{}"}, access_token="hf_othertoken")
    errors: list[Exception] = []
    for call in (
        lambda: client.download(REPO, "nope.onnx"),
        lambda: client.model_metadata("org/gated"),
        lambda: client.download("org/nope", "model.onnx"),
    ):
        with pytest.raises(ModelVerificationError) as info:
            call()
        errors.append(info.value)
    hub_env.faults.fail(503, times=None)
    with pytest.raises(ModelConnectionError) as failed:
        client.download(REPO, "model.onnx")
    errors.append(failed.value)

    shown = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(client), caplog.text]
    shown += list(capsys.readouterr())
    assert not [text for text in shown if TOKEN in text]
    assert hub_env.requests and all(r.authorization == f"Bearer {TOKEN}" for r in hub_env.requests)


def test_token_comes_from_hf_token(
    repo: Snapshot, hub_env: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    client = HubClient()
    assert TOKEN not in repr(client) and "authenticated=True" in repr(client)
    client.file_exists(REPO, "model.onnx")
    assert hub_env.requests[-1].authorization == f"Bearer {TOKEN}"


# -- downloads: LFS redirect, Range, snapshots


def test_large_file_downloads_through_lfs_redirect(repo: Snapshot, hub_env: HubServer) -> None:
    path = HubClient(token=TOKEN).download(REPO, "model.safetensors")
    assert path.read_bytes() == LARGE
    cdn = [r for r in hub_env.requests if r.path.startswith("/lfs-cdn/")]
    assert len(cdn) == 1 and cdn[0].authorization is None  # the token stays on the Hub
    assert hub_env.count("GET", "/resolve/") == 0


def test_range_requests_are_served(repo: Snapshot, hub_env: HubServer) -> None:
    response = httpx2.get(f"{hub_env.url}/{REPO}/resolve/main/model.onnx", headers={"Range": "bytes=5-9"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == "bytes 5-9/110" and response.content == b"bytes"
    beyond = httpx2.get(f"{hub_env.url}/{REPO}/resolve/main/model.onnx", headers={"Range": "bytes=500-"})
    assert beyond.status_code == 416


def test_broken_download_resumes_with_range(client: HubClient, hub_env: HubServer) -> None:
    # huggingface_hub writes in 10 MiB chunks and resumes from the last whole chunk it received.
    chunk = 10 * 1024 * 1024
    content = bytes(range(256)) * (chunk // 256) + b"tail" * 1024
    hub_env.add_repo("org/big", {"weights.bin": content})
    hub_env.faults.truncate(chunk + 100, times=1, path="/lfs-cdn/")
    assert client.download("org/big", "weights.bin").read_bytes() == content
    ranges = [r.headers.get("range") for r in hub_env.requests if r.path.startswith("/lfs-cdn/")]
    assert ranges == [None, f"bytes={chunk}-"]


def test_snapshot_and_cached_snapshot_path(client: HubClient, repo: Snapshot, hub_env: HubServer) -> None:
    assert cached_snapshot_path(REPO, cache_dir=client.cache_dir) is None
    folder = client.snapshot(REPO, allow_patterns=["*.json", "*.onnx"])
    assert folder.name == repo.sha
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == [
        "config.json",
        "decoder.onnx",
        "model.onnx",
    ]
    assert cached_snapshot_path(REPO, cache_dir=client.cache_dir) is None  # model.safetensors is missing
    assert client.snapshot(REPO) == folder
    assert cached_snapshot_path(REPO) == folder  # HF_HUB_CACHE from the environment


# -- offline


def test_offline_answers_from_cache(client: HubClient, repo: Snapshot, hub_env: HubServer) -> None:
    online = client.download(REPO, "model.onnx")
    client.download(REPO, "config.json")
    asked = len(hub_env.requests)

    offline = HubClient(offline=True)
    assert offline.download(REPO, "model.onnx") == online
    assert offline.lookup(REPO, "model.onnx").from_cache
    metadata = offline.model_metadata(REPO)
    assert (metadata.from_cache, metadata.sha, metadata.model_type) == (True, repo.sha, "bert")
    assert metadata.files == ("config.json", "model.onnx")  # only what is cached
    with pytest.raises(ModelNotCachedError, match=r"offline and not cached: file 'model\.safetensors'"):
        offline.download(REPO, "model.safetensors")
    assert len(hub_env.requests) == asked  # not one request offline


def test_offline_uncached_model_fails_clearly(hub_env: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    client = HubClient()
    assert client.offline
    for call in (
        lambda: client.model_metadata("org/never"),
        lambda: client.download("org/never", "model.onnx"),
        lambda: client.file_exists("org/never", "model.onnx"),
        lambda: client.snapshot("org/never"),
    ):
        with pytest.raises(ModelNotCachedError, match=r"offline and not cached: .*'org/never'") as info:
            call()
        # the plugin skips on ModelUnavailableError; verifier users catch ModelFileNotFoundError
        assert isinstance(info.value, ModelUnavailableError) and isinstance(
            info.value, ModelFileNotFoundError
        )
    assert hub_env.requests == []


# -- the policy


def test_retry_policy_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "HFMODELS_RETRY_MAX_RETRIES": "7",
        "HFMODELS_RETRY_BASE_DELAY": "0.5",
        "HFMODELS_RETRY_TOTAL_TIMEOUT": "30",
    }
    policy = RetryPolicy.from_env(env, base_delay=0.25)
    assert (policy.max_retries, policy.base_delay, policy.total_timeout) == (7, 0.25, 30.0)
    with pytest.raises(OptionError, match="HFMODELS_RETRY_BASE_DELAY='soon'"):
        RetryPolicy.from_env({"HFMODELS_RETRY_BASE_DELAY": "soon"})
    with pytest.raises(OptionError, match="max_retries"):
        RetryPolicy(max_retries=-1)


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=5, jitter=0)
    assert [policy.backoff(n, random.Random(0)) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    jittered = RetryPolicy(base_delay=1, jitter=0.5).backoff(1, random.Random(0))
    assert 0.5 <= jittered <= 1
