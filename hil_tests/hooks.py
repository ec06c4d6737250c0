"""Hooks of the HIL suite (registered by ``hil_tests/conftest.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from hil_tests.rig import Rig


@pytest.hookspec(firstresult=True)
def pytest_hil_rig(config: pytest.Config, source_url: str, load: str) -> Rig | None:
    """The rig applying ``load`` to the meter whose pulses ``source_url`` reads, for
    ``--target pulses:URL``; None: a bench started by hand (:class:`~hil_tests.rig.WallRig`).
    """
