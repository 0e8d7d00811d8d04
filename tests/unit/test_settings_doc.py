"""docs/settings.md documents every setting and matches the settings table (STYLE habit 9).

When this fails after adding or changing a setting, regenerate the page:
``.venv/bin/python -m onramp.settings_doc`` (from the repository root) and commit it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import SecretStr

from onramp.settings import Settings
from onramp.settings_doc import main, masked_config, settings_markdown, to_toml, type_name, undocumented

DOC = Path(__file__).parents[2] / "docs" / "settings.md"


def test_settings_page_is_up_to_date() -> None:
    assert DOC.exists() and DOC.read_text(encoding="utf-8") == settings_markdown(), (
        "docs/settings.md is out of date: run `.venv/bin/python -m onramp.settings_doc`"
    )


def test_every_setting_has_a_description() -> None:
    assert undocumented() == []


def test_every_setting_and_env_var_is_on_the_page() -> None:
    page = settings_markdown()
    for section, f in Settings.model_fields.items():
        sub = f.annotation.model_fields if hasattr(f.annotation, "model_fields") else None
        if sub is None:
            assert f"`ONRAMP_{section.upper()}`" in page
            continue
        assert f"## `[{section}]`" in page
        for key in sub:
            assert f"| `{key}` |" in page and f"`ONRAMP_{section.upper()}__{key.upper()}`" in page


def test_check_mode(tmp_path: Path) -> None:
    stale = tmp_path / "settings.md"
    stale.write_text("old\n", encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
    assert main([str(stale)]) == 0
    assert main(["--check", str(stale)]) == 0


def test_type_names() -> None:
    assert type_name(Path | None) == "path (optional)"
    assert type_name(dict[str, SecretStr]) == "table of secret"
    assert type_name(list[str]) == "list of string"


def test_toml_round_trip_and_masking() -> None:
    settings = Settings(
        data_dir=Path("/srv/onramp"),
        mail={"password": "pw", "username": "bob"},
        ftp={"accounts": {"acme": "x", "we ird\t\"name\"": "y"}},
        platform={"name": 'Quote " back \\ slash \x01 ctl'},
    )
    data = masked_config(settings)
    parsed = tomllib.loads(to_toml(data))
    assert parsed["mail"]["password"] == "********" and parsed["mail"]["username"] == "bob"
    assert parsed["ftp"]["accounts"] == {"acme": "********", "we ird\t\"name\"": "********"}
    assert parsed["platform"]["name"] == 'Quote " back \\ slash \x01 ctl'
    assert "ca_file" not in parsed["mail"]  # TOML has no null: shown as a comment
    assert parsed == {k: _drop_none(v) for k, v in data.items()}


def _drop_none(value):
    return {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value
