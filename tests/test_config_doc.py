"""docs/configuration.md is generated from the config's field descriptions
(device.tools.config_doc) and must equal what the code generates now; every
key of every section has a description to generate it from."""

from __future__ import annotations

from pathlib import Path

from device.core.config import Config
from device.tools import config_doc

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_the_committed_reference_is_what_the_code_generates() -> None:
    assert DOC.read_text(encoding="utf-8") == config_doc.render(), (
        "docs/configuration.md is stale: python -m device.tools.config_doc > docs/configuration.md")


def test_every_key_has_a_description_and_every_section_a_summary() -> None:
    missing = []
    for section, model in config_doc.sections().items():
        assert config_doc.SECTIONS.get(section), f"[{section}] has no summary in device/tools/config_doc.py"
        models = {section: model} | {f"{section}.{k}": m for k, m in config_doc.nested(model).items()}
        for where, m in models.items():
            missing += [f"{where}.{name}" for name, info in m.model_fields.items() if not info.description]
    assert missing == []


def test_every_key_and_its_default_is_in_the_reference() -> None:
    text = DOC.read_text(encoding="utf-8")
    defaults = Config().model_dump()
    for section, model in config_doc.sections().items():
        part = text.split(f"## [{section}]\n", 1)[1].split("\n## [", 1)[0]
        for name in model.model_fields:
            row = next((line for line in part.splitlines() if line.startswith(f"| `{name}` |")), None)
            assert row is not None, f"{section}.{name} is not in docs/configuration.md"
            value = defaults[section][name]
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert f"`{value!r}`" in row, f"{section}.{name}: default {value!r} not in {row}"
