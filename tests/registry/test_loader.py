"""Registry loading: validation errors name file, line, model and field; selection works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_hfmodels.cases.expand import expand
from pytest_hfmodels.errors import RegistryError, SelectionError
from pytest_hfmodels.modes import MODES
from pytest_hfmodels.registry.custom_set import load_custom_set
from pytest_hfmodels.registry.loader import load_registries, load_registry_file
from tests.helpers import BUILTIN_FAMILIES, CPU_ONLY, DATA, cpu_settings


def write(tmp_path: Path, text: str, name: str = "fam.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_families_each_have_a_small_tiny_entry_and_key_hub_ids() -> None:
    registry = load_registries([])
    assert set(registry.families) == BUILTIN_FAMILIES
    for family in registry.families:
        small = [e for e in registry.entries if e.family == family and "small" in e.sets]
        assert any(e.source == "tiny" for e in small), family
    key_ids = {e.id for e in registry.select(model_set="key") if e.source == "hub"}
    assert {
        "google-bert/bert-base-uncased",
        "distilbert/distilbert-base-uncased",
        "FacebookAI/roberta-base",
        "openai-community/gpt2",
        "google-t5/t5-small",
        "google/vit-base-patch16-224",
        "openai/whisper-tiny",
        "HuggingFaceTB/SmolLM2-135M",
        "Qwen/Qwen2.5-0.5B",
        "facebook/wav2vec2-base-960h",
        "facebook/detr-resnet-50",
        "openai/clip-vit-base-patch32",
        "laion/clap-htsat-unfused",
        "llava-hf/llava-1.5-7b-hf",
        "llava-hf/llava-v1.6-mistral-7b-hf",
        "microsoft/xclip-base-patch32",
    } <= key_ids


def test_unknown_field_names_file_line_model_and_field() -> None:
    path = DATA / "broken" / "bad.yaml"
    with pytest.raises(RegistryError) as info:
        load_registry_file(path)
    message = str(info.value)
    assert f"{path}:9" in message
    assert "'broken-tiny'" in message and "'colour'" in message and "unknown field" in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "family: x\ntask: [unclosed\n")
    with pytest.raises(RegistryError, match=rf"{path}:\d+: invalid YAML"):
        load_registry_file(path)


@pytest.mark.parametrize(
    ("snippet", "field", "problem"),
    [
        ("source: nowhere", "source", "is not one of"),
        ("source: hub\n    sets: [tiny]", "sets", "must be a list"),
        ("source: hub\n    id: x/y\n    tolerances: {atol: -1}", "tolerances.atol", "finite number"),
        ("source: tiny", None, "needs a 'tiny' section"),
        ("source: hub", None, "needs an 'id'"),
        (
            "source: tiny\n    tiny: {model_type: w, tokenizer: {kind: characters, special_tokens: [a]}}",
            "tiny.tokenizer.class",
            "needs the class",
        ),
        (
            "source: tiny\n    tiny: {model_type: m, tokenizer: {kind: wordpiece, special_tokens: [a], "
            "specials_last: 1}}",
            "tiny.tokenizer.specials_last",
            "must be true or false",
        ),
        (
            "source: tiny\n    tiny: {model_type: m, tokenizer: {kind: wordpiece, padding_side: middle}}",
            "tiny.tokenizer.padding_side",
            "is not one of right, left",
        ),
        (
            "source: tiny\n    tiny: {model_type: m, processor: {class: P, arguments: {}}}",
            "tiny.processor.arguments",
            "unknown field",
        ),
        (
            "source: hub\n    id: x/y\n    modes: [pipline]",
            "modes",
            "'pipline' is not a mode (known: pipeline,",
        ),
        ("source: hub\n    id: x/y\n    modes: []", "modes", "must be a non-empty list drawn from"),
        ("source: hub\n    id: x/y\n    modes: from_pretrained", "modes", "must be a non-empty list"),
        ("source: hub\n    id: x/y\n    modes: [pipeline, pipeline]", "modes", "lists a mode twice"),
        ("source: random", None, "source 'random' needs a 'random' section"),
        ("source: hub\n    id: x/y\n    random: {model_type: bert}", "random", "needs source 'random'"),
        (
            "source: random\n    random: {model_type: bert, config: [768]}",
            "random.config",
            "must be a mapping",
        ),
        ("source: random\n    random: {model_type: bert, weights: 1}", "random.weights", "unknown field"),
        ("source: random\n    random: {config: {}}", "random.model_type", "must be a non-empty string"),
        ("source: random\n    sets: [large]", "sets", "small, medium, key"),
    ],
)
def test_field_errors(tmp_path: Path, snippet: str, field: str | None, problem: str) -> None:
    path = write(
        tmp_path,
        f"family: f\ntask: fill-mask\nmodality: text\narchitecture: A\nmodels:\n  m1:\n    {snippet}\n",
    )
    with pytest.raises(RegistryError) as info:
        load_registry_file(path)
    assert problem in str(info.value)
    assert "model 'm1'" in str(info.value)
    if field:
        assert f"field {field!r}" in str(info.value)


def test_duplicate_model_keys_across_files_name_both(tmp_path: Path) -> None:
    body = "family: {f}\ntask: t\nmodality: text\narchitecture: A\n"
    body += "models:\n  bert-tiny:\n    source: hub\n    id: a/b\n"
    write(tmp_path, body.format(f="other"), "other.yaml")
    with pytest.raises(RegistryError, match=r"also defined in .*bert\.yaml"):
        load_registries([tmp_path])


def test_selection_by_family_model_and_set() -> None:
    registry = load_registries([DATA / "registries"])
    assert {e.key for e in registry.select(families=["electra"])} == {"electra-tiny"}
    assert [e.key for e in registry.select(models=["gpt2"])] == ["gpt2"]  # a model key overrides the set
    assert all("key" in e.sets for e in registry.select(model_set="key"))
    assert len(registry.select(model_set="all")) == len(registry.entries)
    with pytest.raises(SelectionError, match="--hf-family 'nope'"):
        registry.select(families=["nope"])
    with pytest.raises(SelectionError, match="--hf-model 'nope'"):
        registry.select(models=["nope"])


def test_family_modes_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "family: f\ntask: t\nmodality: text\narchitecture: A\nmodes: [from_pretrained, tflite]\n"
        "models:\n  m1:\n    source: hub\n    id: x/y\n",
    )
    with pytest.raises(RegistryError) as info:
        load_registry_file(path)
    assert f"{path}:5" in str(info.value)
    assert "field 'modes'" in str(info.value) and "'tflite' is not a mode" in str(info.value)


def test_random_section_errors_name_file_line_model_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "family: f\ntask: t\nmodality: text\narchitecture: A\nmodels:\n  m1:\n    source: random\n"
        "    random:\n      model_type: bert\n      tokenizer: {kind: wordpiece, vocab_size: many}\n",
    )
    with pytest.raises(RegistryError) as info:
        load_registry_file(path)
    assert f"{path}:10: model 'm1': field 'random.tokenizer.vocab_size'" in str(info.value)


def test_the_medium_set_holds_one_random_entry_per_family() -> None:
    medium = load_registries([]).select(model_set="medium")
    families = [e.family for e in medium]
    assert len(families) == len(set(families))
    # llava_next has none: its smallest published configuration is 7B, 30 GB in fp32.
    assert set(families) >= BUILTIN_FAMILIES - {"llava_next", "sam"}
    assert all(e.source == "random" and e.random is not None and e.weights == "random" for e in medium)
    assert all(e.id == f"random/{e.key}" and e.key.endswith("-random") for e in medium)


def test_modes_narrow_the_generated_cases_family_first_then_model(tmp_path: Path) -> None:
    write(
        tmp_path,
        "family: f\ntask: t\nmodality: vision\narchitecture: A\nmodes: [from_pretrained, openvino]\n"
        "models:\n  inherits:\n    source: hub\n    id: x/y\n"
        "  overrides:\n    source: hub\n    id: x/z\n    modes: [pipeline]\n",
    )
    registry = load_registries([tmp_path], include_builtin=False)
    settings, hardware = cpu_settings(tuple(MODES)), CPU_ONLY
    ids = [case.id for case in expand(registry.entries, settings, hardware)]
    assert ids == ["inherits-from_pretrained-cpu", "inherits-openvino-cpu", "overrides-pipeline-cpu"]
    # A custom-set model of the family takes the family's modes too.
    models_file = write(tmp_path, '{"mine": {"name": "me/model", "family": "f"}}', "custom.json")
    (custom,) = load_custom_set(models_file, registry)
    assert custom.modes == ("from_pretrained", "openvino")


def test_xclip_has_no_pipeline_case_and_llava_next_has_both_default_modes() -> None:
    """transformers has no zero-shot video classification pipeline: xclip's registry rules it out."""
    registry = load_registries([])
    settings, hardware = cpu_settings(("pipeline", "from_pretrained"), scenarios=("forward",)), CPU_ONLY
    entries = registry.select(families=["xclip", "llava_next"], model_set="small")
    ids = [case.id for case in expand(entries, settings, hardware)]
    assert ids == [
        "llava-next-tiny-pipeline-cpu",
        "llava-next-tiny-from_pretrained-cpu",
        "xclip-tiny-from_pretrained-cpu",
    ]


def test_modes_ruled_out_for_every_selected_model_are_a_selection_error() -> None:
    """Else `--hf-mode pipeline --hf-family xclip` would collect nothing and say nothing."""
    registry = load_registries([])
    settings, hardware = cpu_settings(("pipeline",)), CPU_ONLY
    with pytest.raises(SelectionError, match=r"--hf-mode pipeline: .*xclip-tiny: from_pretrained, onnx"):
        expand(registry.select(families=["xclip"], model_set="small"), settings, hardware)
    # One selected model that can run the mode is enough: the others just make no case.
    both = registry.select(families=["xclip", "llava_next"], model_set="small")
    assert [case.id for case in expand(both, settings, hardware)] == ["llava-next-tiny-pipeline-cpu"]


#: a valid one-model family: the model's `id` is on line 8
FAMILY = (
    "family: {family}\ntask: t\nmodality: text\narchitecture: A\n"
    "models:\n  {key}:\n    source: hub\n    id: x/y\n"
)


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(FAMILY.format(family="f", key="m1").replace("x/y", "caf\xe9").encode("latin-1"))
    with pytest.raises(RegistryError) as info:
        load_registries([tmp_path], include_builtin=False)
    assert str(info.value) == f"{path}:8: not UTF-8 text: byte 0xe9 at offset {path.read_bytes().index(0xE9)}"


def test_a_control_character_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, FAMILY.format(family="f", key="m1").replace("x/y", "x\x01y"))
    with pytest.raises(
        RegistryError, match=rf"^{re.escape(str(path))}:8: invalid YAML: character #x0001"
    ) as info:
        load_registry_file(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "line", "key", "first"),
    [
        ("family: f\ntask: t\nfamily: g\n", 3, "family", 1),
        (FAMILY.format(family="f", key="m1") + "    id: x/z\n", 9, "id", 8),
        (FAMILY.format(family="f", key="m1") + "  m1:\n    source: tiny\n", 9, "m1", 6),
        ("family: f\ntolerances: {atol: 1, rtol: 2, atol: 3}\n", 2, "atol", 2),
    ],
    ids=["top-level", "model-field", "model-key", "flow-mapping"],
)
def test_duplicate_keys_name_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, first: int
) -> None:
    """PyYAML alone keeps the last of two equal keys, silently."""
    path = write(tmp_path, text)
    with pytest.raises(RegistryError) as info:
        load_registry_file(path)
    assert str(info.value) == f"{path}:{line}: invalid YAML: duplicate key {key!r} (first on line {first})"


def test_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    """`<<: *anchor` then a key of the anchor's is YAML's override, not a duplicate."""
    path = write(
        tmp_path,
        "family: f\ntask: t\nmodality: text\narchitecture: A\nmodels:\n"
        "  m1: &base\n    source: hub\n    id: x/y\n  m2:\n    <<: *base\n    id: x/z\n",
    )
    assert [(e.key, e.id) for e in load_registry_file(path)] == [("m1", "x/y"), ("m2", "x/z")]


def test_one_family_in_two_files_names_both(tmp_path: Path) -> None:
    first = write(tmp_path, FAMILY.format(family="electra", key="a"), "a.yaml")
    second = write(tmp_path, FAMILY.format(family="electra", key="b"), "b.yaml")
    with pytest.raises(RegistryError) as info:
        load_registries([tmp_path], include_builtin=False)
    assert str(info.value) == f"{second}:1: field 'family': 'electra' is also defined in {first}"


def test_a_builtin_family_redefined_names_the_builtin_file(tmp_path: Path) -> None:
    path = write(tmp_path, FAMILY.format(family="bert", key="my-bert"), "mine.yaml")
    with pytest.raises(
        RegistryError, match=rf"^{re.escape(str(path))}:1: .*'bert' is also defined in .*bert\.yaml$"
    ):
        load_registries([tmp_path])


def test_a_mode_that_is_not_a_string_is_a_registry_error(tmp_path: Path) -> None:
    path = write(tmp_path, FAMILY.format(family="f", key="m1") + "    modes: [[pipeline]]\n")
    with pytest.raises(RegistryError, match=r"field 'modes': .* is not a mode"):
        load_registry_file(path)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        (
            "custom.json",
            '{"a": {"name": "me/a", "family": "bert"}, "a": {"name": "me/b", "family": "bert"}}',
            "duplicate key 'a'",
        ),
        (
            "custom.yaml",
            "a: {name: me/a, family: bert}\na: {name: me/b, family: bert}\n",
            "duplicate key 'a' (first on line 1)",
        ),
    ],
)
def test_a_custom_set_with_a_model_twice_is_refused(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    models_file = write(tmp_path, text, name)
    with pytest.raises(RegistryError, match=re.escape(problem)) as info:
        load_custom_set(models_file, load_registries([]))
    assert str(models_file) in str(info.value)
