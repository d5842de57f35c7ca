"""Where a model's ONNX file comes from: the repo's own file first (`hub_file`), validated against
PyTorch, else this tool's validated conversion (`cached.export_onnx`). The exported modes and the
`hf_onnx_path` fixture both get theirs here, with the PyTorch reference they were checked against."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_hfmodels.convert.onnx.cached import OnnxExport, export_onnx
from pytest_hfmodels.convert.onnx.hub_file import HubOnnx, find_hub_onnx, validated_hub_onnx
from pytest_hfmodels.convert.onnx.reference import ReferenceModel, load_reference
from pytest_hfmodels.convert.onnx.specs import read_config, spec_for
from pytest_hfmodels.errors import ModelConnectionError
from pytest_hfmodels.registry.model import Tolerances


def model_onnx(
    model_dir: Path,
    cache_root: Path,
    *,
    model_id: str,
    tolerances: Tolerances,
    repo_id: str | None = None,
    revision: str | None = None,
    onnx_files: Sequence[str] = (),
    offline: bool = False,
    full_check: bool = False,
    client: Any = None,
    with_reference: bool = True,
) -> tuple[OnnxExport | HubOnnx, ReferenceModel | None]:
    """The ONNX file of the model in `model_dir` and its PyTorch reference (None for a conversion
    when not `with_reference`: a Hub file is always checked against one).

    `repo_id` (a Hub model with its own weights) is searched for `onnx_files` first; a Hub that
    cannot answer (down, or offline without the file cached) leaves conversion as the way.
    """
    config = read_config(model_dir)
    spec = spec_for(model_dir, config)
    if repo_id and onnx_files:
        started = time.perf_counter()
        if client is None:
            from pytest_hfmodels.hub.client import HubClient

            client = HubClient(offline=offline)
        try:
            found = find_hub_onnx(client, repo_id, revision, onnx_files)
        except ModelConnectionError:
            found = None  # nothing to compare against: the model is converted, as offline
        if found is not None:
            reference = load_reference(model_dir, spec, config)
            hub = validated_hub_onnx(
                found.path,
                found.repo_file,
                reference,
                tolerances,
                from_cache=found.from_cache,
                started=started,
            )
            return hub, reference
    export = export_onnx(
        model_dir, cache_root, spec, tolerances=tolerances, model_id=model_id, full_check=full_check
    )
    return export, load_reference(model_dir, spec, config) if with_reference else None
