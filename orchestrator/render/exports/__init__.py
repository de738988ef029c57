"""Exports the ecosystem reads, one small serializer per format: pyperf, Bencher's BMF,
github-action-benchmark, JUnit XML. They only serialize ``analysis.series.Benchmark`` records
(and, for JUnit, the history's open regressions); what to export is decided by the command.
"""

FORMATS = ("pyperf", "bmf", "github-action-benchmark", "junit")
