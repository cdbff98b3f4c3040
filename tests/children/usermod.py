"""A port developer's target module, for tests/test_verify.py::test_subprocess_checks_import_the_users_target: copied
into a folder that is only the working directory, or only on PYTHONPATH, so that the checks which start child
processes must find it there too. The target itself is impl's: the test is about finding the module, not about
its numbers."""

from vitspec.impl import TARGET

__all__ = ["TARGET"]
