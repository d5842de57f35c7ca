"""The from_pretrained mode on real tiny models: inputs, output shapes from the config, checks."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.errors import CheckFailed
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.runners import runner_class
from pytest_hfmodels.samples import SAMPLE_POINT_PROMPTS
from pytest_hfmodels.sources.resolve import resolve_model_files

pytestmark = pytest.mark.slow  # builds and runs real models

CPU = Device(label="cpu", kind="cpu", name="test cpu")


def test_sam_masks_follow_the_config_and_the_point_prompts() -> None:
    entry = next(e for e in load_registries([]).entries if e.key == "sam-tiny")
    folder = resolve_model_files(entry, default_cache_root(), offline=True).path
    runner = runner_class("from_pretrained")(entry, CPU)
    runner.load(folder)
    try:
        inputs = runner.make_inputs(batch_size=3)
        # Three 64x64 images, each with its point prompts of one (x, y) point, in float32.
        assert tuple(inputs["pixel_values"].shape) == (3, 3, 64, 64)
        assert tuple(inputs["input_points"].shape) == (3, SAMPLE_POINT_PROMPTS, 1, 2)
        assert str(inputs["input_points"].dtype) == "torch.float32"
        outputs = runner.infer(inputs)
        # The registry's config: 3 candidate masks a prompt, at 4x the encoder's 8x8 grid.
        config = runner.model.config  # type: ignore[attr-defined]
        assert config.mask_decoder_config.num_multimask_outputs == 3
        assert config.prompt_encoder_config.image_embedding_size == 8
        assert outputs["iou_scores"].shape == (3, SAMPLE_POINT_PROMPTS, 3)
        assert outputs["pred_masks"].shape == (3, SAMPLE_POINT_PROMPTS, 3, 32, 32)
        assert all(np.isfinite(values).all() for values in outputs.values())
        runner.check(inputs, outputs)
        # Masks depend on the image and on the prompt: neither axis is a copy of one row.
        masks = outputs["pred_masks"]
        assert not np.allclose(masks[0], masks[1], atol=1e-2)
        assert not np.allclose(masks[:, 0], masks[:, 1], atol=1e-2)

        one_prompt = {**outputs, "pred_masks": masks[:, :1]}
        with pytest.raises(CheckFailed, match=r"SamModel\.pred_masks: shape \(3, 1, 3, 32, 32\), expected "):
            runner.check(inputs, one_prompt)
        broken = outputs["iou_scores"].copy()
        broken[0, 0, 0] = np.nan
        with pytest.raises(CheckFailed, match=r"SamModel\.iou_scores: 1 non-finite values"):
            runner.check(inputs, {**outputs, "iou_scores": broken})
    finally:
        runner.close()
