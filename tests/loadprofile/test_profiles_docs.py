"""Every YAML example in docs/profiles.md parses, and each segment and event kind has one."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO
from twin.loadprofile import EventKind, SegmentKind, load_profile

ROOT = REPO
DOC = (ROOT / "docs" / "profiles.md").read_text()
EXAMPLES = re.findall(r"```yaml\n(.*?)```", DOC, flags=re.S)


def test_docs_have_one_example_per_kind() -> None:
    assert len(EXAMPLES) >= 20
    segment_kinds = {k for ex in EXAMPLES for k in re.findall(r"kind: (\w+)", ex)}
    for kind in (*SegmentKind, *EventKind):
        assert kind in segment_kinds, f"no example for kind {kind}"


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_doc_example_parses(index: int, tmp_path: Path) -> None:
    shutil.copy(ROOT / "profiles" / "csv-day.csv", tmp_path / "csv-day.csv")
    path = tmp_path / "example.yaml"
    path.write_text(EXAMPLES[index])
    profile = load_profile(path)
    block = profile.sampler().block(0.0, 60.0, 30)
    assert block.n == 30
