"""What a target declares (spec/protocol.py Capabilities) and the checks it puts out of scope.

A check that needs something the target does not declare is skipped as "NOT COVERED: target X declares ...",
with the capability in the reason (never silently, never as passed). The rotary form a target takes is built
from reference angles by ``rotary_for`` (tests/rotary_inputs.py), so every form is checked, not skipped.
"""

from __future__ import annotations

import pytest

from vitspec.spec.protocol import Capabilities, capabilities

NOT_COVERED = "NOT COVERED:"


def declared(target) -> Capabilities:
    """The target's checked declaration; a bad declaration is a usage error naming the key and allowed values."""
    try:
        return capabilities(target)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from e


def _name(target) -> str:
    return str(getattr(target, "name", type(target).__name__))


def not_covered(target, key: str, value, needs: str) -> None:
    """Skip the running check as NOT COVERED, naming the declaration that puts it out of scope."""
    pytest.skip(f"{NOT_COVERED} target {_name(target)} declares {key}={value!r}; this check needs {needs}")


def require_variant(target, variant: str) -> None:
    """A smart_resize variant the target declares (smart_resize_variants)."""
    caps = declared(target)
    if variant not in caps.smart_resize_variants:
        not_covered(target, "smart_resize_variants", caps.smart_resize_variants, f"variant {variant!r}")


def require_media(target, medium: str) -> None:
    """'image' or 'video' among the media the target declares."""
    caps = declared(target)
    if medium not in caps.media:
        not_covered(target, "media", caps.media, f"{medium} input")


def require_geometry(target, temporal_patch_size: int | None = None, merge_size: int | None = None) -> None:
    """A temporal patch size and merge size the target declares (None in the declaration: any)."""
    caps = declared(target)
    if (
        temporal_patch_size is not None
        and caps.temporal_patch_sizes is not None
        and temporal_patch_size not in caps.temporal_patch_sizes
    ):
        not_covered(
            target, "temporal_patch_sizes", caps.temporal_patch_sizes, f"temporal_patch_size={temporal_patch_size}"
        )
    if merge_size is not None and caps.merge_sizes is not None and merge_size not in caps.merge_sizes:
        not_covered(target, "merge_sizes", caps.merge_sizes, f"merge_size={merge_size}")


def require_validation(target) -> None:
    """The bad-input checks count only for a target that declares validates_inputs=True."""
    caps = declared(target)
    if not caps.validates_inputs:
        not_covered(target, "validates_inputs", False, "validates_inputs=True (target does not validate its inputs)")


def require_rotary(target, form: str) -> None:
    """A check written for one rotary form (most checks convert instead: tests/rotary_inputs.py)."""
    caps = declared(target)
    if caps.rotary != form:
        not_covered(target, "rotary", caps.rotary, f"rotary={form!r}")
