"""docs/outputs.md is generated from the demo run's outputs and kept in sync."""

from __future__ import annotations

from conftest import REPO

from aperflow.outputs_doc import describe_outputs


def test_outputs_doc_is_in_sync_with_the_demo_run(demo_run):
    generated = describe_outputs(demo_run / "results") + "\n"
    committed = (REPO / "docs" / "outputs.md").read_text()
    assert generated == committed, (
        "docs/outputs.md is stale: regenerate it with `aperflow outputs results > docs/outputs.md` "
        "after a demo run"
    )


def test_every_column_is_described(demo_run):
    undocumented = [
        line
        for line in describe_outputs(demo_run / "results").splitlines()
        if line.startswith("| `") and line.endswith("|  |")
    ]
    assert not undocumented, undocumented
