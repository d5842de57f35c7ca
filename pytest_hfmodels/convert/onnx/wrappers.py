"""Modules that run a model for export: its spec's outputs as a tuple with stable names, and for
families whose own forward cannot be traced with dynamic axes (LLaVA, LLaVA-NeXT) the model's modules
without the offending step. `reference.load_reference` checks a wrapper reproduces the model first."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pytest_hfmodels.convert.onnx.specs import ExportSpec
from pytest_hfmodels.errors import ModelConversionError
from pytest_hfmodels.samples import image_size


def named_outputs(model: Any, spec: ExportSpec) -> Any:
    import torch

    names, outputs, kwargs = spec.inputs, spec.outputs, dict(spec.forward_kwargs)

    class NamedOutputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> tuple[Any, ...]:
            result = self.model(**dict(zip(names, tensors, strict=True)), **kwargs)
            return tuple(result[name] for name in outputs)

    return NamedOutputs().eval()


def _projected_image_features(model: Any, pixel_values: Any) -> Any:
    """What LLaVA-type models' `get_image_features` computes before splitting the batch: the vision
    tower's configured layer(s), CLS dropped by the "default" strategy, through the projector. One
    row per image (or tile), one feature vector per image token."""
    import torch

    config, inner = model.config, model.model
    layers = config.vision_feature_layer
    layers = [layers] if isinstance(layers, int) else list(layers)
    first = 1 if config.vision_feature_select_strategy == "default" else 0
    hidden = inner.vision_tower(pixel_values, output_hidden_states=True).hidden_states
    selected = torch.cat([hidden[layer][:, first:] for layer in layers], dim=-1)
    return inner.multi_modal_projector(selected)


def _llava_logits(model: Any, spec: ExportSpec) -> Any:
    """LLaVA's forward with the image features kept as one tensor.

    `LlavaModel.get_image_features` turns the batch of features into a Python list, which the tracer
    unrolls into as many slices as the export sample had images: the graph then fixes the batch size.
    This module computes the features as that method does (vision tower, the configured layer(s),
    CLS dropped by the "default" strategy, the projector) and hands them to the model's own forward
    as `mm_encoder_outputs`, which embeds the prompt and scatters them into the image tokens.
    """
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    names, kwargs = spec.inputs, dict(spec.forward_kwargs)

    class LlavaLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> tuple[Any, ...]:
            inputs = dict(zip(names, tensors, strict=True))
            features = _projected_image_features(self.model, inputs.pop("pixel_values"))
            features = features.flatten(0, 1)  # one row per image token
            image = BaseModelOutputWithPooling(pooler_output=(features,))
            result = self.model(**inputs, mm_encoder_outputs={"image": image}, **kwargs)
            return (result["logits"],)

    return LlavaLogits().eval()


def _llava_next_logits(model: Any, spec: ExportSpec) -> Any:
    """LLaVA-NeXT's forward for images of one size, the sample's, with the image features one tensor.

    `LlavaNextModel.get_image_features` splits the tiles by image and `pack_image_features` packs each
    image's features in a Python loop, with the tile grid and the unpadding read from `image_sizes`:
    tracing unrolls the loop into a fixed batch. For images of one size the tile count, the grid and
    the unpadded region are the same for every image, so this module packs the batch at once: the
    vision tower on every tile, the configured layer(s), CLS dropped by the "default" strategy, the
    projector, then per image the base view's features followed by the tiles' feature grid, unpadded
    and closed by `image_newline` per row, as `pack_image_features` does (its own helpers give the grid
    and the region). The size is the vision tower's image_size (what `samples.model_inputs` gives): an
    export serves that size only. `image_sizes` stays a graph input and guards it: an image of another
    size gets NaN features, so its row's logits are not finite and the runners' checks fail; run
    outside tracing (the PyTorch reference) the module refuses such `image_sizes` by name.
    """
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling
    from transformers.models.llava_next import modeling_llava_next as llava_next

    names, kwargs = spec.inputs, dict(spec.forward_kwargs)
    config = model.config
    height, width = image_size(config)
    tile = config.vision_config.image_size
    side = tile // config.vision_config.patch_size  # features per tile along each axis
    pinpoints = config.image_grid_pinpoints
    tiles = llava_next.image_size_to_num_patches((height, width), pinpoints, tile)  # the base view too
    rows, cols = llava_next.get_anyres_image_grid_shape((height, width), pinpoints, tile)
    # The region unpad_image keeps of the tiles' (rows * side, cols * side) feature grid.
    positions = torch.arange(rows * side * cols * side).view(1, rows * side, cols * side)
    kept = llava_next.unpad_image(positions, (height, width))
    top, left = divmod(int(kept[0, 0, 0]), cols * side)
    kept_h, kept_w = kept.shape[1:]

    class LlavaNextLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> tuple[Any, ...]:
            inputs = dict(zip(names, tensors, strict=True))
            inner = self.model.model
            pixel_values, sizes = inputs.pop("pixel_values"), inputs.pop("image_sizes")
            if torch._C._get_tracing_state() is None and bool((sizes != torch.tensor([height, width])).any()):
                raise ModelConversionError(
                    f"export wrapper 'llava_next' serves {height}x{width} images only, not image_sizes "
                    f"{sizes.tolist()}"
                )
            features = _projected_image_features(self.model, pixel_values.flatten(0, 1))  # every tile
            dim = features.shape[-1]
            features = features.reshape(-1, tiles, side * side, dim)  # (images, tiles, tokens, dim)
            base = features[:, 0]
            newline = inner.image_newline.to(features.dtype)
            if tiles > 1:
                grid = features[:, 1:].reshape(-1, rows, cols, side, side, dim)
                grid = grid.permute(0, 5, 1, 3, 2, 4).reshape(-1, dim, rows * side, cols * side)
                grid = grid[:, :, top : top + kept_h, left : left + kept_w]
                ends = newline.view(1, -1, 1, 1).expand(grid.shape[0], dim, kept_h, 1)
                grid = torch.cat((grid, ends), dim=-1).flatten(2, 3).transpose(1, 2)
                packed = torch.cat((base, grid), dim=1)
            else:
                packed = torch.cat((base, newline.view(1, 1, -1).expand(base.shape[0], 1, dim)), dim=1)
            served = (sizes == torch.tensor([height, width], dtype=sizes.dtype)).all(dim=-1)
            packed = torch.where(served.view(-1, 1, 1), packed, torch.full_like(packed, float("nan")))
            image = BaseModelOutputWithPooling(pooler_output=(packed.flatten(0, 1),))
            result = self.model(**inputs, mm_encoder_outputs={"image": image}, **kwargs)
            return (result["logits"],)

    return LlavaNextLogits().eval()


#: spec.wrapper -> a function (model, resolved spec) returning the module to export
WRAPPERS: Mapping[str, Callable[[Any, ExportSpec], Any]] = {
    "llava": _llava_logits,
    "llava_next": _llava_next_logits,
}
