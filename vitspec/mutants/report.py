"""The report of `vitspec mutants`: the kill matrix, the JSON record and a JUnit XML file."""
from __future__ import annotations

from vitspec.spec.protocol import STAGES

COLUMNS = tuple(dict.fromkeys(s.module for s in STAGES))  # matrix columns: the stage groups, in pipeline order
MODULE_OF = {s.name: s.module for s in STAGES}


def matrix(jobs) -> str:
    """One row per mutant: X where a stage group's checks failed, . where the bug's stage held, then the verdict."""
    width = max(len(j.name) for j in jobs)
    head = " " * width + "  " + " ".join(c[:5].ljust(5) for c in COLUMNS) + "  result"
    lines = [head]
    for j in jobs:
        failed = {MODULE_OF[s] for s in j.failed_stages}
        declared = {MODULE_OF[s] for s in j.stages}
        cells = ("X" if c in failed else "." if c in declared else " " for c in COLUMNS)
        lines.append(f"{j.name:{width}}  " + " ".join(c.ljust(5) for c in cells) + f"  {j.status}"
                     + (f": {j.detail}" if j.status in ("survived", "error", "failed", "unverified") else ""))
    mutants = [j for j in jobs if not j.control]
    per_group = [(sum(j.status == "killed" for j in mutants if c in {MODULE_OF[s] for s in j.stages}),
                  sum(c in {MODULE_OF[s] for s in j.stages} for j in mutants)) for c in COLUMNS]
    lines.append(f"{'killed / mutants per group':{width}}  " + " ".join(f"{k}/{n}".ljust(5) for k, n in per_group))
    return "\n".join(lines)


def as_json(jobs, seconds: float) -> dict:
    """killed, total, the controls and, per mutant, name, killed, killing_tests (and its record)."""
    from vitspec.mutants.catalogue import BY_NAME
    mutants = [j for j in jobs if not j.control]
    return {"killed": sum(j.status == "killed" for j in mutants), "total": len(mutants), "seconds": round(seconds, 1),
            "controls": [{"name": j.name, "dtype": j.dtype, "passed": j.status == "passed", "detail": j.detail,
                          "seconds": round(j.seconds, 1),
                          "failed_tests": j.killing_tests} for j in jobs if j.control],
            "mutants": [{"name": j.name, "killed": j.status == "killed", "status": j.status,
                         "mutant": j.mutant or j.name, "stages": list(j.stages),
                         "bug_class": BY_NAME[j.mutant or j.name].bug_class,
                         "description": BY_NAME[j.mutant or j.name].description, "dtype": j.dtype or "float32",
                         "killing_tests": j.killing_tests, "failed_stages": j.failed_stages,
                         "detail": j.detail, "seconds": round(j.seconds, 1)} for j in mutants]}


def write_junit(path: str, jobs) -> None:
    """JUnit XML: one test case per control and mutant; a surviving mutant or failed control is a failure."""
    from xml.etree import ElementTree as ET
    bad = [j for j in jobs if j.status not in ("killed", "passed")]
    suite = ET.Element("testsuite", name="vitspec-mutants", tests=str(len(jobs)), failures=str(len(bad)))
    for j in jobs:
        case = ET.SubElement(suite, "testcase", classname="control" if j.control else "mutant", name=j.name,
                             time=f"{j.seconds:.2f}")
        if j in bad:
            ET.SubElement(case, "failure", message=f"{j.status}: {j.detail}"[:500])
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
