"""The docstring examples of the modules whose examples need no trained files run as tests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["inference.multi", "inference.inputs", "inference.template", "inference.backend.tokens",
           "solution.precision", "solution.losses.nt_xent", "solution.losses.smooth_k2", "export.parity"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
