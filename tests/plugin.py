"""Suite options: which target to check (--target), on which device and dtype, and the Hypothesis profile.

    pytest --target vitspec.impl:TARGET --device cuda --dtype bfloat16 --profile ci --max-examples 50

Every test is marked with the protocol stage(s) it checks (``@pytest.mark.stage("window_index")``). A test
about a stage the target lacks is skipped as "NOT COVERED: ..." before it runs; an upstream-oracle test that
cannot run is skipped as "UPSTREAM ORACLE MISSING: ...". Both kinds are counted loudly at the end.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase, MultiplexedDatabase

from vitspec.spec.protocol import DTYPES, STAGE_NAMES, configured_target, default_target, provided_stages
from vitspec.tests.shared_db import configuration_name, shared_database
from vitspec.tests import checks

NOT_COVERED = "NOT COVERED:"
ORACLE_MISSING = "UPSTREAM ORACLE MISSING:"
PROFILES = ("dev", "ci", "nightly", "mutation")


def _register_profiles() -> None:
    """dev: random, modest; ci: derandomized and sized to fit; nightly: many random examples, database kept;
    mutation: few derandomized examples, fast."""
    common = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])
    db_dir = os.environ.get("VITSPEC_HYPOTHESIS_DB", ".hypothesis")
    settings.register_profile("dev", max_examples=20, **common)
    settings.register_profile("ci", max_examples=25, derandomize=True, database=None, **common)
    settings.register_profile("nightly", max_examples=400, database=DirectoryBasedExampleDatabase(db_dir), **common)
    settings.register_profile("mutation", max_examples=6, derandomize=True, database=None, **common)


def pytest_addoption(parser):
    group = parser.getgroup("vitspec")
    group.addoption("--target", default=None,
                    help="the target to check, package.module:attr (default: $VITSPEC_TARGET or vitspec.impl:TARGET)")
    group.addoption("--device", default=None, help="device for the target: cpu or cuda (via its with_options)")
    group.addoption("--dtype", default=None, choices=DTYPES, help="compute dtype for the target (via its with_options)")
    group.addoption("--profile", default="ci", choices=PROFILES, help="Hypothesis profile (default ci)")
    group.addoption("--max-examples", type=int, default=None, help="override the profile's examples per property")


def _configured_target(config):
    """Load the target and apply --device / --dtype; a bad choice is a usage error."""
    spec = config.getoption("target") or default_target()
    try:
        return spec, configured_target(spec, config.getoption("device"), config.getoption("dtype"))
    except (ValueError, TypeError) as e:
        raise pytest.UsageError(str(e)) from e


SUITE_DIR = Path(__file__).resolve().parent


def _is_vitspec_session(config) -> bool:
    """True when this pytest run collects the vitspec suite (a path inside it, ``--pyargs vitspec.tests...``, or
    --target given). The plugin is registered for every pytest run in the environment; outside the suite it only
    adds its options and markers, and leaves Hypothesis's settings and the user's imports alone."""
    if config.getoption("target"):
        return True
    for arg in config.args or [str(config.rootpath)]:
        head = str(arg).split("::", 1)[0]
        if head == "vitspec.tests" or head.startswith("vitspec.tests."):
            return True
        path = Path(config.invocation_params.dir, head).resolve()
        if path == SUITE_DIR or SUITE_DIR in path.parents:
            return True
    return False


def pytest_configure(config):
    config._vitspec_target = None
    config.addinivalue_line("markers", "stage(*names): the protocol stage(s) a test checks (report rows)")
    config.addinivalue_line("markers", "conformance: checks the reference or the spec, not the target")
    config.addinivalue_line("markers", "negative_control: shows a check rejects a planted bug")
    config.addinivalue_line("markers", "modules: calls impl's or the reference's modules directly, whatever the target "
                                       "(counted apart from the target's stage checks)")
    if not _is_vitspec_session(config):
        return
    _register_profiles()
    profile = config.getoption("profile")
    n = config.getoption("max_examples")
    if n is not None:
        if n < 1:
            raise pytest.UsageError(f"--max-examples must be a positive integer, got {n}")
        settings.register_profile(f"{profile}-n", settings.get_profile(profile), max_examples=n)
        profile = f"{profile}-n"
    spec = config.getoption("target") or default_target()
    shared = os.environ.get("VITSPEC_SHARED_DB")
    if shared is not None and config.getoption("profile") == "nightly":  # docs/FUZZING.md, tests/shared_db.py
        name = configuration_name(spec, config.getoption("device"), config.getoption("dtype"))
        try:
            database = MultiplexedDatabase(settings.get_profile(profile).database, shared_database(shared, name))
        except ValueError as e:
            raise pytest.UsageError(str(e)) from e
        settings.register_profile(f"{profile}-shared", settings.get_profile(profile), database=database)
        profile = f"{profile}-shared"
    settings.load_profile(profile)
    spec, target = _configured_target(config)
    config._vitspec_target = target
    checks.RUN.update(target=spec, device=config.getoption("device"), dtype=config.getoption("dtype"),
                      profile=config.getoption("profile"), max_examples=n,
                      seed=config.getoption("hypothesis_seed", default=None),
                      target_dtype=getattr(target, "dtype", "float64"), target_name=getattr(target, "name", spec))


def pytest_report_header(config):
    t = config._vitspec_target
    if t is None:
        return None
    return (f"vitspec target: {checks.RUN['target']} (name {getattr(t, 'name', '?')}, dtype "
            f"{getattr(t, 'dtype', 'float64')}, device {getattr(t, 'device', 'cpu')}), "
            f"profile {checks.RUN['profile']}, {settings.default.max_examples} examples per property")


def item_stages(item) -> list[str]:
    """The stage names a test is marked with."""
    return [name for m in item.iter_markers("stage") for name in m.args]


def pytest_runtest_setup(item):
    """Skip, as not covered, a target test whose stage the target does not provide."""
    if any(item.get_closest_marker(m) for m in ("conformance", "negative_control", "modules")):
        return
    target = item.config._vitspec_target
    if target is None:
        return
    missing = [s for s in item_stages(item) if s in STAGE_NAMES and s not in provided_stages(target)]
    if missing:
        pytest.skip(f"{NOT_COVERED} target {getattr(target, 'name', checks.RUN['target'])} lacks stage "
                    f"{', '.join(missing)}")


@pytest.fixture(scope="session")
def target(request):
    """The target under test, configured with --device and --dtype."""
    return request.config._vitspec_target


@pytest.fixture(scope="session")
def stage(target):
    """stage(name) -> the target's method for that stage, or a NOT COVERED skip."""
    def get(name: str):
        if name not in STAGE_NAMES:
            raise ValueError(f"stage must be one of {list(STAGE_NAMES)}, got {name!r}")
        fn = getattr(target, name, None)
        if not callable(fn):
            pytest.skip(f"{NOT_COVERED} target {getattr(target, 'name', checks.RUN['target'])} lacks stage {name}")
        return fn
    return get


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_terminal_summary(terminalreporter):
    """Count, loudly, the checks that did not run because a stage is missing or an upstream oracle is absent."""
    if terminalreporter.config._vitspec_target is None:
        return
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = [_skip_reason(r) for r in skipped]
    not_covered = [r for r in reasons if r.startswith(NOT_COVERED)]
    missing = [r for r in reasons if r.startswith(ORACLE_MISSING)]
    if not (not_covered or missing):
        return
    tr = terminalreporter
    tr.section("vitspec: checks that did not run", sep="=", yellow=True, bold=True)
    if not_covered:
        stages = sorted({r.split("lacks stage", 1)[-1].strip() for r in not_covered})
        tr.line(f"NOT COVERED: {len(not_covered)} checks, target lacks stages: {', '.join(stages)}",
                yellow=True, bold=True)
    if missing:
        why = sorted(set(missing))[0].removeprefix(ORACLE_MISSING).strip()
        tr.line(f"{ORACLE_MISSING} {len(missing)} checks ({why})", yellow=True, bold=True)
