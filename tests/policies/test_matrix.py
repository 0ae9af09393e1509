"""The access matrix in docs/policies.md is the one the policy files give today."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.matrix import BEGIN, END, main, replace_between_markers, table

DOC = Path(__file__).resolve().parents[2] / "docs" / "policies.md"


def test_the_documented_matrix_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert replace_between_markers(text, table()) == text, (
        "docs/policies.md is stale: run python -m policies.matrix --write docs/policies.md"
    )


def test_the_matrix_states_the_chats_contract() -> None:
    rows = {}
    for line in table().splitlines()[2:]:
        cells = line.split(" | ")
        rows[f"{cells[1]} {cells[2]}"] = line
    assert rows["`dynamodb:Scan` messages table"].endswith("| - | - | - | - | - | - | yes |")
    assert "| denied | denied | denied |" in rows["`iot:Subscribe` chat/pub/+"]


def test_write_needs_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{BEGIN}\nold\n{END}\nafter\n")
    assert main(["--write", str(page)]) == 0
    assert page.read_text() == f"intro\n{BEGIN}\n{table()}{END}\nafter\n"
    page.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        main(["--write", str(page)])
