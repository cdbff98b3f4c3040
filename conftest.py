"""Running the suite from a checkout: the suite itself is the pytest plugin ``vitspec.tests.plugin``, which the
installed distribution registers (entry point ``pytest11``). This file only makes a run from a checkout that
was never installed fail with the command that fixes it, instead of a wall of import errors."""

import importlib.util

import pytest


def pytest_configure(config):
    if importlib.util.find_spec("vitspec") is None or importlib.util.find_spec("vitspec.tests") is None:
        raise pytest.UsageError("vitspec is not installed: run .ci/install (or pip install -e '.[test]') first")
    if not config.pluginmanager.has_plugin("vitspec"):
        raise pytest.UsageError("the vitspec pytest plugin is not registered: reinstall with .ci/install")
