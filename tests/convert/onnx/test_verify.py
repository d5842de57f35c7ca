"""verify.py and `hfmodels verify|metadata`, against the local hub server with the real client."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_hfmodels.cli import main
from pytest_hfmodels.convert.onnx.verify import ModelFileVerifier, verify_and_get_onnx_model
from pytest_hfmodels.errors import ModelConnectionError, ModelConversionError, ModelFileNotFoundError

if TYPE_CHECKING:
    from tests.hubserver import HubServer

pytest_plugins = ("tests.hubserver",)

TOKEN = "hf_SECRETtoken123"


@pytest.fixture
def hub(hub_env: HubServer) -> HubServer:
    config = {"model_type": "bert", "architectures": ["BertModel"]}
    hub_env.add_repo("org/with-onnx", {"config.json": json.dumps(config).encode(), "model.onnx": b"onnx"})
    hub_env.add_repo("org/no-onnx", {"config.json": b'{"model_type": "gpt2"}', "model.safetensors": b"st"})
    return hub_env


class RecordingConverter:
    """A converter that writes a file and remembers what it was asked."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self,
        *,
        model_id: str,
        file_path: str,
        model_type: str | None,
        conversion_config: Mapping[str, Any] | None,
        verifier: ModelFileVerifier,
    ) -> Path:
        self.calls.append({"model_id": model_id, "file_path": file_path, "model_type": model_type})
        target = self.folder / model_id.replace("/", "--") / file_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"converted")
        return target


# -- the Python API


def test_verify_model_exists(hub: HubServer) -> None:
    verifier = ModelFileVerifier()
    assert verifier.verify_model_exists("org/with-onnx", "model.onnx")
    assert not verifier.verify_model_exists("org/no-onnx", "model.onnx")
    assert not verifier.verify_model_exists("org/absent", "model.onnx")


def test_verify_model_exists_raises_when_unreachable(hub: HubServer) -> None:
    hub.faults.fail(503, times=None)
    with pytest.raises(ModelConnectionError):
        ModelFileVerifier(max_retries=1, retry_delay=0.01).verify_model_exists("org/with-onnx", "model.onnx")
    assert hub.count("HEAD") == 2


def test_get_model_metadata(hub: HubServer) -> None:
    metadata = ModelFileVerifier().get_model_metadata("org/with-onnx")
    assert metadata["model_type"] == "bert" and metadata["architectures"] == ["BertModel"]
    assert metadata["has_onnx"] and metadata["onnx_files"] == ["model.onnx"]
    assert metadata["files"] == ["config.json", "model.onnx"] and len(metadata["sha"]) == 40


def test_verify_for_benchmark_downloads_or_converts(hub: HubServer, tmp_path: Path) -> None:
    converter = RecordingConverter(tmp_path / "converted")
    verifier = ModelFileVerifier(converter=converter)

    path, converted = verifier.verify_model_for_benchmark("org/with-onnx", "model.onnx")
    assert (path.read_bytes(), converted) == (b"onnx", False)

    path, converted = verifier.verify_model_for_benchmark("org/no-onnx", "model.onnx", model_type="gpt2")
    assert (path.read_bytes(), converted) == (b"converted", True)
    assert converter.calls == [{"model_id": "org/no-onnx", "file_path": "model.onnx", "model_type": "gpt2"}]

    with pytest.raises(ModelFileNotFoundError, match="repo missing: repo 'org/absent'"):
        verifier.verify_model_for_benchmark("org/absent", "model.onnx")
    assert len(converter.calls) == 1  # no conversion can stand in for a missing repo


def test_verify_for_benchmark_without_converter_names_the_file(hub: HubServer) -> None:
    verifier = ModelFileVerifier(allow_conversion=False)
    with pytest.raises(
        ModelFileNotFoundError, match=r"file missing: repo 'org/no-onnx', revision 'main', file"
    ):
        verifier.verify_model_for_benchmark("org/no-onnx", "model.onnx")
    assert verify_and_get_onnx_model("org/with-onnx", "model.onnx")[1] is False


def test_failing_converter_is_a_conversion_error(hub: HubServer) -> None:
    def broken(**_: Any) -> Path:
        raise RuntimeError("exporter crashed")

    with pytest.raises(ModelConversionError, match=r"org/no-onnx.*exporter crashed"):
        ModelFileVerifier(converter=broken).verify_model_for_benchmark("org/no-onnx", "model.onnx")


def test_batch_verify_models(hub: HubServer, tmp_path: Path) -> None:
    verifier = ModelFileVerifier(converter=RecordingConverter(tmp_path))
    results = verifier.batch_verify_models(
        [
            {"model_id": "org/with-onnx", "file_path": "model.onnx"},
            {"model_id": "org/no-onnx", "file_path": "model.onnx", "model_type": "gpt2"},
            {"model_id": "org/absent", "file_path": "model.onnx"},
        ],
        max_workers=3,
    )
    assert [r["model_id"] for r in results] == ["org/with-onnx", "org/no-onnx", "org/absent"]
    assert [(r["success"], r["was_converted"]) for r in results] == [
        (True, False),
        (True, True),
        (False, False),
    ]
    assert Path(results[0]["local_path"]).read_bytes() == b"onnx"
    assert results[1]["model_type"] == "gpt2"
    assert results[2]["error_class"] == "ModelFileNotFoundError" and "org/absent" in results[2]["error"]
    assert results[2]["local_path"] is None


# -- the command line


def test_cli_verify_exit_codes(hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "org/with-onnx", "--file", "model.onnx"]) == 0
    assert "FOUND" in capsys.readouterr().out
    assert main(["verify", "org/no-onnx", "--file", "model.onnx"]) == 1
    assert "MISSING" in capsys.readouterr().out
    assert main(["verify", "org/with-onnx", "--models", "org/no-onnx", "--check-exists", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "org/no-onnx" in out and "org/with-onnx" not in out
    with pytest.raises(SystemExit) as usage:
        main(["verify", "--no-such-option"])
    assert usage.value.code == 2
    assert main(["verify"]) == 2  # no model named


def test_cli_verify_batch_and_model_file(hub: HubServer, tmp_path: Path) -> None:
    batch = tmp_path / "models.json"
    batch.write_text(
        json.dumps(
            [
                {"model_id": "org/with-onnx", "file_path": "model.onnx"},
                {"model_id": "org/no-onnx", "file_path": "model.safetensors", "model_type": "gpt2"},
            ]
        )
    )
    output = tmp_path / "results.json"
    assert main(["verify", "--batch", str(batch), "--output", str(output), "--quiet"]) == 0
    results = json.loads(output.read_text())
    assert [(r["model_id"], r["success"]) for r in results] == [
        ("org/with-onnx", True),
        ("org/no-onnx", True),
    ]

    listing = tmp_path / "models.txt"
    listing.write_text("# models to check\norg/with-onnx  # has one\n\norg/absent\n")
    assert main(["verify", "--model-file", str(listing), "--check-exists"]) == 1
    assert main(["verify", "--model-file", str(tmp_path / "none.txt")]) == 2


def test_cli_metadata(hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metadata", "org/with-onnx", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["model_type"], data["has_onnx"], data["files"]) == (
        "bert",
        True,
        ["config.json", "model.onnx"],
    )
    assert main(["metadata", "org/absent"]) == 1
    assert "repository 'org/absent' not found" in capsys.readouterr().err


def test_cli_token_is_sent_never_printed(hub: HubServer, capsys: pytest.CaptureFixture[str]) -> None:
    hub.add_repo("org/gated", {"model.onnx": b"x"}, access_token="hf_other")
    assert main(["verify", "org/gated", "org/with-onnx", "--token", TOKEN]) == 1
    assert main(["metadata", "org/gated", "--token", TOKEN]) == 1
    captured = capsys.readouterr()
    assert "access denied" in captured.out + captured.err
    assert TOKEN not in captured.out + captured.err
    assert all(
        r.authorization == f"Bearer {TOKEN}" for r in hub.requests if not r.path.startswith("/lfs-cdn/")
    )
