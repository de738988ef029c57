"""JUnit XML: one passing test case per exported series, one failing test case per open regression.

A regression is confirmed, unacknowledged and still open in its series' latest segment (what
``history --fail-on-regression`` fails on); its failure message is the alert's first line and
its text the whole alert.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from orchestrator.analysis.regressions import Regression
from orchestrator.analysis.series import Benchmark
from orchestrator.render.history_view import alert_lines


def serialize(benchmarks: Sequence[Benchmark], regressions: Sequence[Regression]) -> str:
    """Return a JUnit XML document (one testsuite) of the exported series and the open regressions."""
    cases = []
    failing = {r.series.series.id for r in regressions}
    for b in benchmarks:
        if b.key.id not in failing:
            cases.append((ET.Element("testcase", classname=b.key.workload, name=b.name, time="0"), None))
    for r in regressions:
        for c in r.changes:
            case = ET.Element("testcase", classname=r.series.series.key.workload,
                              name=f"{c.kind} {c.id}: {r.series.series.key.describe()}", time="0")
            lines = alert_lines(r.series, c)
            failure = ET.SubElement(case, "failure", message=lines[0], type="regression")
            failure.text = "\n".join(lines)
            cases.append((case, failure))
    suite = ET.Element("testsuite", name="topobench history", tests=str(len(cases)),
                       failures=str(sum(1 for _, f in cases if f is not None)), errors="0", skipped="0")
    suite.extend(case for case, _ in cases)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
