"""Suite options: which target to check (--target), on which device and dtype, and the Hypothesis profile.

    pytest --target vitspec.impl:TARGET --device cuda --dtype bfloat16 --profile ci --max-examples 50

Every test is marked with the protocol stage(s) it checks (``@pytest.mark.stage("window_index")``), and with the
helper stages it may build inputs with (``@pytest.mark.stage("window_index", helpers=("cu_seqlens",))``: checked
when the target has them, taken from the reference otherwise, via ``stage.or_reference``). A test runs when the
target provides at least one of its stages under check; otherwise it is skipped as "NOT COVERED: ..." before it
runs. A test that runs without some of its stages (the target lacks them) runs only the checks of the others, and
its report says which stages it did not check (vitspec_not_run) and which helpers it took from the reference
(vitspec_reference_helper). An upstream-oracle test that cannot run is skipped as "UPSTREAM ORACLE MISSING: ...".
All of these are counted loudly at the end.

--checks target|self|all (default all) selects the target checks (marked with stages, and none of conformance,
negative_control, modules) or the suite's own checks (everything else); the other kind is deselected. The target
is wrapped in a call recorder (``Recorder``): each test's call report carries, in user_properties, the stages whose
method it called (vitspec_exercised) and the stage a failed check named (vitspec_failed_stage, from
checks.StageMismatch), which ``vitspec verify`` turns into its per-stage rows.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase, MultiplexedDatabase

from vitspec.spec.protocol import DTYPES, STAGE_NAMES, capabilities, configured_target, default_target, provided_stages
from vitspec.tests import checks
from vitspec.tests.shared_db import configuration_name, shared_database

NOT_COVERED = "NOT COVERED:"
ORACLE_MISSING = "UPSTREAM ORACLE MISSING:"
PROFILES = ("dev", "ci", "nightly", "mutation")
CHECKS = ("target", "self", "all")
SELF_MARKERS = ("conformance", "negative_control", "modules")
# user_properties entries the plugin and the tests leave on a test's reports (vitspec.verify reads them)
EXERCISED = "vitspec_exercised"  # a stage whose target method the test called
FAILED_STAGE = "vitspec_failed_stage"  # the stage a checks.fail() named when the test failed
DIFFERENCE = "vitspec_difference"  # "stage: form: detail", a recorded difference (checks.record_difference)
NOT_RUN = "vitspec_not_run"  # a marked stage the target lacks, in a test that ran: none of its checks ran
REFERENCE_HELPER = "vitspec_reference_helper"  # "row: helper": the test checked row on the target with inputs built
# by the reference's helper stage (the target lacks it; stage.or_reference)


def _register_profiles() -> None:
    """dev: random, modest; ci: derandomized and sized to fit; nightly: many random examples, database kept;
    mutation: few derandomized examples, fast."""
    common = dict(
        deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
    )
    db_dir = os.environ.get("VITSPEC_HYPOTHESIS_DB", ".hypothesis")
    settings.register_profile("dev", max_examples=20, **common)
    settings.register_profile("ci", max_examples=25, derandomize=True, database=None, **common)
    settings.register_profile("nightly", max_examples=400, database=DirectoryBasedExampleDatabase(db_dir), **common)
    settings.register_profile("mutation", max_examples=6, derandomize=True, database=None, **common)


def pytest_addoption(parser):
    group = parser.getgroup("vitspec")
    group.addoption(
        "--target",
        default=None,
        help="the target to check, package.module:attr (default: $VITSPEC_TARGET or vitspec.impl:TARGET)",
    )
    group.addoption("--device", default=None, help="device for the target: cpu or cuda (via its with_options)")
    group.addoption("--dtype", default=None, choices=DTYPES, help="compute dtype for the target (via its with_options)")
    group.addoption("--profile", default="ci", choices=PROFILES, help="Hypothesis profile (default ci)")
    group.addoption("--max-examples", type=int, default=None, help="override the profile's examples per property")
    group.addoption(
        "--checks",
        default="all",
        choices=CHECKS,
        help="target: only the checks of the target's stages; self: only the suite's own checks (reference "
        "conformance, negative controls, modules, tool); all (default)",
    )


def _configured_target(config):
    """Load the target and apply --device / --dtype; a bad choice is a usage error."""
    spec = config.getoption("target") or default_target()
    try:
        return spec, configured_target(spec, config.getoption("device"), config.getoption("dtype"))
    except (ValueError, TypeError) as e:
        raise pytest.UsageError(str(e)) from e


SUITE_DIR = Path(__file__).resolve().parent


CHECKOUT = SUITE_DIR.parent if (SUITE_DIR.parent / "pyproject.toml").is_file() else None  # None: installed


def _collects_suite(target, args, rootpath, invocation_dir) -> bool:
    if target:
        return True
    for arg in args or [str(rootpath)]:
        head = str(arg).split("::", 1)[0]
        if head == "vitspec.tests" or head.startswith("vitspec.tests."):
            return True
        path = Path(invocation_dir, head).resolve()
        if path == SUITE_DIR or SUITE_DIR in path.parents:
            return True
    return False


def _is_vitspec_session(config) -> bool:
    """True when this pytest run collects the vitspec suite (a path inside it, ``--pyargs vitspec.tests...``, or
    --target given). The plugin is registered for every pytest run in the environment; outside the suite it only
    adds its options and markers, and leaves Hypothesis's settings and the user's imports alone."""
    return _collects_suite(config.getoption("target"), config.args, config.rootpath, config.invocation_params.dir)


def _scratch(prefix: str) -> str:
    """A temporary folder, removed when this process exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _in_checkout(path) -> bool:
    path = Path(path).resolve()
    return CHECKOUT is not None and (path == CHECKOUT or CHECKOUT in path.parents)


def pytest_load_initial_conftests(early_config, parser, args):
    """A vitspec run started outside the checkout (from a user's directory, or of an installed suite) writes nothing
    where it runs: no .pytest_cache outside the checkout (pytest's cache provider is switched off as by
    -p no:cacheprovider, unless -o cache_dir=... names a place) and no .hypothesis (Hypothesis's storage goes to a
    temporary folder, unless the run keeps a database: the nightly profile, VITSPEC_HYPOTHESIS_DB)."""
    ns = early_config.known_args_namespace
    here = early_config.invocation_params.dir
    if not _collects_suite(getattr(ns, "target", None), ns.file_or_dir, early_config.rootpath, here):
        return
    overrides = getattr(ns, "override_ini", None) or []
    if not _in_checkout(early_config.rootpath) and not any(str(o).startswith("cache_dir=") for o in overrides):
        for name in ("cacheprovider", "stepwise"):  # as -p no:cacheprovider does (stepwise needs the cache)
            early_config.pluginmanager.set_blocked(name)
    if (
        not _in_checkout(here)
        and getattr(ns, "profile", "ci") != "nightly"
        and "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ
    ):
        from hypothesis.configuration import set_hypothesis_home_dir

        set_hypothesis_home_dir(_scratch("vitspec-hypothesis-"))


def _quiet_elsewhere(config) -> None:
    """Plugins of the environment that would write into the user's directory at startup (pytest-benchmark's
    ./.benchmarks) keep their files in a temporary folder instead, unless told where."""
    if _in_checkout(config.invocation_params.dir):
        return
    if getattr(config.option, "benchmark_storage", None) == "file://./.benchmarks":
        config.option.benchmark_storage = "file://" + _scratch("vitspec-benchmarks-")


def is_target_check(item) -> bool:
    """A target check: marked with protocol stage(s) only, and none of the self-check markers."""
    stages = item_stages(item)
    return (
        bool(stages)
        and all(s in STAGE_NAMES for s in stages)
        and not any(item.get_closest_marker(m) for m in SELF_MARKERS)
    )


def pytest_collection_modifyitems(config, items):
    """--checks target|self: the other kind is deselected (not run, not counted)."""
    which = config.getoption("checks")
    if which == "all" or config._vitspec_target is None:
        return
    keep, drop = [], []
    for item in items:
        (keep if is_target_check(item) == (which == "target") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class Recorder:
    """The target as the suite sees it: every attribute forwarded; the stage methods (also those of the copies
    with_options returns) note in checks.CURRENT["called"] that the running test called them."""

    def __init__(self, target):
        object.__setattr__(self, "_vitspec_target", target)

    def __getattr__(self, name):
        value = getattr(object.__getattribute__(self, "_vitspec_target"), name)
        if name in STAGE_NAMES and callable(value):

            @functools.wraps(value)
            def recorded(*args, **kwargs):
                checks.CURRENT["called"].add(name)
                return value(*args, **kwargs)

            return recorded
        if name == "with_options" and callable(value):

            @functools.wraps(value)
            def configured(*args, **kwargs):
                return Recorder(value(*args, **kwargs))

            return configured
        return value

    def __setattr__(self, name, value):
        setattr(object.__getattribute__(self, "_vitspec_target"), name, value)

    def __dir__(self):
        return dir(object.__getattribute__(self, "_vitspec_target"))

    def __repr__(self):
        return f"Recorder({object.__getattribute__(self, '_vitspec_target')!r})"


def unwrap(target):
    """The target inside a Recorder (the object itself otherwise)."""
    return target._vitspec_target if isinstance(target, Recorder) else target


def pytest_configure(config):
    config._vitspec_target = None
    config.addinivalue_line("markers", "stage(*names): the protocol stage(s) a test checks (report rows)")
    config.addinivalue_line("markers", "conformance: checks the reference or the spec, not the target")
    config.addinivalue_line("markers", "negative_control: shows a check rejects a planted bug")
    config.addinivalue_line(
        "markers",
        "modules: calls impl's or the reference's modules directly, whatever the target "
        "(counted apart from the target's stage checks)",
    )
    if not _is_vitspec_session(config):
        return
    _quiet_elsewhere(config)
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
    try:  # a bad capabilities declaration is a usage error before anything runs
        capabilities(target)
    except ValueError as e:
        raise pytest.UsageError(f"target {spec!r}: {e}") from e
    config._vitspec_target = Recorder(target)
    checks.RUN.update(
        target=spec,
        device=config.getoption("device"),
        dtype=config.getoption("dtype"),
        profile=config.getoption("profile"),
        max_examples=n,
        seed=config.getoption("hypothesis_seed", default=None),
        target_dtype=getattr(target, "dtype", "float64"),
        target_name=getattr(target, "name", spec),
    )


def pytest_report_header(config):
    t = config._vitspec_target
    if t is None:
        return None
    return (
        f"vitspec target: {checks.RUN['target']} (name {getattr(t, 'name', '?')}, dtype "
        f"{getattr(t, 'dtype', 'float64')}, device {getattr(t, 'device', 'cpu')}), "
        f"profile {checks.RUN['profile']}, {settings.default.max_examples} examples per property"
    )


def checked_stages(item) -> list[str]:
    """The stages a test checks (the stage marker's arguments)."""
    return list(dict.fromkeys(name for m in item.iter_markers("stage") for name in m.args))


def helper_stages(item) -> list[str]:
    """The helper stages a test is marked with (``helpers=``): checked when the target provides them, taken from the
    reference only to build inputs otherwise (``stage.or_reference``)."""
    out = []
    for m in item.iter_markers("stage"):
        helpers = m.kwargs.get("helpers", ())
        out += [helpers] if isinstance(helpers, str) else list(helpers)
    return list(dict.fromkeys(out))


def item_stages(item) -> list[str]:
    """The report rows of a test: its stages under check, then its helper stages."""
    return list(dict.fromkeys(checked_stages(item) + helper_stages(item)))


def helper_note(row: str, helper: str, n: int) -> str:
    """The report's line for `n` checks of `row` that built inputs with the reference's `helper`."""
    checks_ = f"{n} check{'s' if n != 1 else ''}"
    return f"{row}: {checks_} took {helper} from the reference, to build inputs only (the target lacks {helper})"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """The running test, for repro commands (its file by absolute path) and for the recorder."""
    test_id = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else ""
    checks.CURRENT.update(
        node=f"{item.path}::{test_id}" if test_id else str(item.path), item=item, called=set(), helpers=set()
    )


def _mismatched_stages(exc) -> list[str]:
    """The stages StageMismatch errors in `exc` name (exception groups walked)."""
    if isinstance(exc, checks.StageMismatch):
        return [exc.stage]
    if isinstance(getattr(exc, "exceptions", None), (list, tuple)):  # an exception group
        return [s for e in exc.exceptions for s in _mismatched_stages(e)]
    return []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """The call report carries, in user_properties, the stages the test exercised and the stage a failed check
    named."""
    target = item.config._vitspec_target
    if call.when == "call" and target is not None:
        for name in sorted(checks.CURRENT["called"]):
            item.user_properties.append((EXERCISED, name))
        if is_target_check(item):
            provided = set(provided_stages(target))
            rows = item_stages(item)
            for name in rows:
                if name not in provided:
                    item.user_properties.append((NOT_RUN, name))
            for helper in sorted(checks.CURRENT.get("helpers", ())):
                for name in rows:
                    if name in provided:
                        item.user_properties.append((REFERENCE_HELPER, f"{name}: {helper}"))
        if call.excinfo is not None:
            stages = list(dict.fromkeys(_mismatched_stages(call.excinfo.value)))
            for name in stages:
                item.user_properties.append((FAILED_STAGE, name))
            if not stages and "reproduce:" not in str(call.excinfo.value):
                # an exception raised inside the target (not a check's mismatch) gets the same reproduce line
                call.excinfo.value.add_note(f"reproduce: {checks.repro_command()}")
    return (yield)


def pytest_runtest_setup(item):
    """Skip, as not covered, a target test when the target provides none of its stages under check. A test whose
    target lacks only some of them runs: it checks the stages the target has (``stage.provides``), and builds what it
    needs of a helper stage the target lacks with the reference (``stage.or_reference``)."""
    if any(item.get_closest_marker(m) for m in SELF_MARKERS):
        return
    target = item.config._vitspec_target
    if target is None:
        return
    checked = [s for s in checked_stages(item) if s in STAGE_NAMES]
    provided = set(provided_stages(target))
    if checked and not provided & set(checked):
        pytest.skip(
            f"{NOT_COVERED} target {getattr(target, 'name', checks.RUN['target'])} lacks stage {', '.join(checked)}"
        )


class Stages:
    """The ``stage`` fixture.

    stage(name): the target's method for that stage, or a NOT COVERED skip of the whole test.
    stage.provides(name): whether the target has that stage (a test that checks several stages runs the checks of
    those it has; the report counts the others as not covered).
    stage.or_reference(name): for a helper stage of the running test (``@pytest.mark.stage(..., helpers=(name,))``),
    the target's method when it has one (then it is checked as part of the chain), otherwise the reference's
    (``vitspec.reference.TARGET``, which validates its inputs), to build inputs only: a test never compares what the
    reference built with the reference, and the report says the check used a reference helper.
    """

    def __init__(self, target):
        self.target = target

    def _name(self, name: str) -> str:
        if name not in STAGE_NAMES:
            raise ValueError(f"stage must be one of {list(STAGE_NAMES)}, got {name!r}")
        return name

    def provides(self, name: str) -> bool:
        return callable(getattr(self.target, self._name(name), None))

    def __call__(self, name: str):
        if not self.provides(name):
            pytest.skip(f"{NOT_COVERED} target {getattr(self.target, 'name', checks.RUN['target'])} lacks stage {name}")
        return getattr(self.target, name)

    def or_reference(self, name: str):
        item = checks.CURRENT.get("item")
        if self._name(name) not in (helper_stages(item) if item is not None else (name,)):
            raise ValueError(
                f"{name} is not a helper stage of {item.nodeid}: mark it @pytest.mark.stage(..., helpers=({name!r},))"
            )
        if self.provides(name):
            return getattr(self.target, name)
        from vitspec import reference

        checks.CURRENT.setdefault("helpers", set()).add(name)
        return getattr(reference.TARGET, name)


@pytest.fixture(scope="session")
def target(request):
    """The target under test, configured with --device and --dtype."""
    return request.config._vitspec_target


@pytest.fixture(scope="session")
def stage(target):
    """stage(name) -> the target's method for that stage, or a NOT COVERED skip; stage.provides(name);
    stage.or_reference(name) for a helper stage (``Stages``)."""
    return Stages(target)


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _ran_reports(terminalreporter) -> list:
    """The call reports of the tests that ran (passed or failed)."""
    return [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, []) if r.when == "call"]


def pytest_terminal_summary(terminalreporter):
    """Count, loudly, the checks that did not run because a stage is missing or an upstream oracle is absent, the
    tests that ran without the checks of stages the target lacks, and the checks that used a reference helper."""
    if terminalreporter.config._vitspec_target is None:
        return
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = [_skip_reason(r) for r in skipped]
    not_covered = [r for r in reasons if r.startswith(NOT_COVERED)]
    missing = [r for r in reasons if r.startswith(ORACLE_MISSING)]
    ran = _ran_reports(terminalreporter)
    not_run = Counter(v for r in ran for k, v in getattr(r, "user_properties", ()) if k == NOT_RUN)
    helpers = Counter(v for r in ran for k, v in getattr(r, "user_properties", ()) if k == REFERENCE_HELPER)
    if not (not_covered or missing or not_run or helpers):
        return
    tr = terminalreporter
    tr.section("vitspec: checks that did not run (or ran with a reference helper)", sep="=", yellow=True, bold=True)
    lacking = [r for r in not_covered if "lacks stage" in r]
    lacked = sorted({s.strip() for r in lacking for s in r.split("lacks stage", 1)[1].split(",")})
    if lacking or not_run:
        if lacking:
            tr.line(
                f"NOT COVERED: {len(lacking)} checks, target lacks stages: {', '.join(lacked)}", yellow=True, bold=True
            )
        for stage_name, n in sorted(not_run.items()):
            tr.line(
                f"NOT COVERED: {stage_name} in {n} check{'s' if n != 1 else ''} that ran for the target's other "
                f"stages (target lacks {stage_name})",
                yellow=True,
                bold=True,
            )
        declared = getattr(unwrap(terminalreporter.config._vitspec_target), "capabilities", None)
        inline = declared.get("inline", {}) if isinstance(declared, dict) else {}
        for stage_name in sorted(set(lacked) | set(not_run)):
            if isinstance(inline, dict) and stage_name in inline:
                tr.line(f"  {stage_name}: {inline[stage_name]}", yellow=True)
    for why, n in sorted(
        Counter(r.removeprefix(NOT_COVERED).strip() for r in not_covered if "lacks stage" not in r).items()
    ):
        tr.line(f"NOT COVERED: {n} checks, {why}", yellow=True, bold=True)
    if missing:
        why = sorted(set(missing))[0].removeprefix(ORACLE_MISSING).strip()
        tr.line(f"{ORACLE_MISSING} {len(missing)} checks ({why})", yellow=True, bold=True)
    for entry, n in sorted(helpers.items()):
        row, _, helper = entry.partition(": ")
        tr.line(f"REFERENCE HELPER: {helper_note(row, helper, n)}", yellow=True)
