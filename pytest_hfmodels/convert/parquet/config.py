"""What a Parquet conversion is asked to do (`ConversionConfig`) and what it did (`ConversionResult`).

Both are plain values with no heavy imports, so the CLI can build them (and `--help` can list the
choices) without loading torch, transformers or pyarrow.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from pytest_hfmodels.errors import OptionError

#: compression codecs a weights file may use; "none" stores the tensor bytes as they are
COMPRESSIONS: tuple[str, ...] = ("zstd", "lz4", "snappy", "none")

#: model families with their own component selection and sample inputs; "generic" is any other
#: transformers model, converted through its state dict; "auto" reads the family from config.json
MODEL_TYPES: tuple[str, ...] = ("auto", "bert", "clip", "whisper", "generic")

#: parts of a model that can be converted alone, per family
COMPONENTS: dict[str, tuple[str, ...]] = {
    "bert": ("all",),
    "clip": ("all", "vision", "text"),
    "whisper": ("all", "encoder", "decoder"),
    "generic": ("all",),
}
ALL_COMPONENTS: tuple[str, ...] = ("all", "vision", "text", "encoder", "decoder")

#: float16 rounds to nearest with an 11-bit significand: the relative error of a value in float16's
#: normal range is at most 2**-11 (4.9e-4); 1e-3 leaves room for that and nothing more.
FLOAT16_MAX_RELATIVE_ERROR = 1e-3
#: the smallest positive normal float16 (2**-14, 6.1e-5). Below it float16 keeps a fixed absolute
#: spacing, not a relative one, so errors of tiny values are measured relative to this floor.
FLOAT16_RELATIVE_ERROR_FLOOR = 2.0**-14
#: Parquet stores a binary value's length as a 32-bit int; tensors above this are split into chunks.
PARQUET_MAX_VALUE_BYTES = 2**31 - 1
#: chunk size of an uncompressed file: a tensor up to this is one value, which readers map (no copy)
DEFAULT_MAX_CHUNK_BYTES = 1 << 30
#: chunk size of a compressed file: Parquet writes a value through its page and a compressed copy, and
#: reads it through the compressed bytes, the page and the value, so converting and loading cost about
#: three chunks beyond the weights, whatever the model. Measured on bert-base (zstd, fp32 and float16):
#: write and read CPU time within noise of one chunk per tensor from 1 MiB up, files 0.01% larger.
COMPRESSED_CHUNK_BYTES = 4 << 20


@dataclass(frozen=True)
class ConversionConfig:
    """Options of one conversion; variants via `dataclasses.replace`."""

    #: codec for the tensor bytes: one of COMPRESSIONS
    compression: str = "zstd"
    #: zstd level (1-22); the other codecs have no level and ignore it
    compression_level: int = 3
    #: store float32/float64 tensors as float16 (bfloat16, float16 and integer tensors are kept)
    use_float16: bool = True
    #: save the source's tokenizer or processor under `tokenizer/` when it has one
    extract_tokenizer: bool = True
    #: read the file back and compare tensors and model outputs with the original
    validate_output: bool = True
    #: bound on the largest float16 relative error (see FLOAT16_MAX_RELATIVE_ERROR)
    float16_max_relative_error: float = FLOAT16_MAX_RELATIVE_ERROR
    #: |original| below this counts as this in the relative error (see FLOAT16_RELATIVE_ERROR_FLOOR)
    relative_error_floor: float = FLOAT16_RELATIVE_ERROR_FLOOR
    #: largest model-output difference allowed, relative to the output's largest magnitude;
    #: None: 1e-6 when every dtype is kept, 1e-2 with float16 (fp16 weights perturb outputs ~1e-3)
    output_tolerance: float | None = None
    #: largest stored chunk of one tensor, rounded down to whole elements (below Parquet's 2 GiB value
    #: limit); None: COMPRESSED_CHUNK_BYTES with a codec, DEFAULT_MAX_CHUNK_BYTES without (`chunk_bytes`)
    max_chunk_bytes: int | None = None
    #: progress bar over tensors; None: only when stderr is a terminal
    show_progress: bool | None = None

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise OptionError(f"compression: {self.compression!r} is not one of {', '.join(COMPRESSIONS)}")
        if self.compression == "zstd" and not 1 <= self.compression_level <= 22:
            raise OptionError(f"compression_level: zstd levels are 1-22, got {self.compression_level}")
        if self.max_chunk_bytes is not None and not 0 < self.max_chunk_bytes <= PARQUET_MAX_VALUE_BYTES:
            raise OptionError(
                f"max_chunk_bytes: must be in 1..{PARQUET_MAX_VALUE_BYTES}, got {self.max_chunk_bytes}"
            )
        for name in ("float16_max_relative_error", "relative_error_floor"):
            if not getattr(self, name) > 0:
                raise OptionError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.output_tolerance is not None and not self.output_tolerance >= 0:
            raise OptionError(f"output_tolerance: must be >= 0, got {self.output_tolerance}")

    @property
    def chunk_bytes(self) -> int:
        """The chunk size the writer uses: `max_chunk_bytes`, or its default for the codec."""
        if self.max_chunk_bytes is not None:
            return self.max_chunk_bytes
        return DEFAULT_MAX_CHUNK_BYTES if self.compression == "none" else COMPRESSED_CHUNK_BYTES

    def output_tolerance_for(self, float16_used: bool) -> float:
        if self.output_tolerance is not None:
            return self.output_tolerance
        return 1e-2 if float16_used else 1e-6


@dataclass(frozen=True)
class ConversionResult:
    """The outcome of one conversion. Paths are strings so the result travels as JSON."""

    success: bool
    model_name: str
    output_dir: str
    parquet_path: str | None = None
    tokenizer_path: str | None = None
    metadata_path: str | None = None
    #: elements in the stored tensors, tied tensors counted once
    total_parameters: int = 0
    #: size of the Parquet file in MB (10**6 bytes)
    file_size_mb: float = 0.0
    #: bytes of the stored tensors / bytes of the file: compression alone, float16 not counted
    compression_ratio: float = 0.0
    conversion_time_sec: float = 0.0
    #: True: validated and passed; False: validated and failed; None: not validated
    validation_passed: bool | None = None
    error_message: str | None = None
    #: the content of metadata.json (also on failure, as far as the conversion got)
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(dataclasses.asdict(self), indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ConversionResult:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a ConversionResult is a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ConversionResult fields: {', '.join(unknown)}")
        return cls(**data)
