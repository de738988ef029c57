"""``topobench export RUN… --format pyperf|bmf|github-action-benchmark|junit``: results in others' formats."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.commands.options import ResultsOption
from orchestrator.settings import RESULTS_DIR
from workloads.errors import UserError

if TYPE_CHECKING:
    from orchestrator.pipeline.history import ExportInputs


def export(
    runs: Annotated[list[str], typer.Argument(help="Runs to export, pooled: run ids, 'latest' or 'latest~N'.")],
    format: Annotated[str, typer.Option(
        "--format", help="pyperf | bmf | github-action-benchmark | junit")] = "pyperf",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write here instead of stdout (github-action-benchmark: a folder, for its two files).")] = None,
    results: ResultsOption = str(RESULTS_DIR),
    repo: Annotated[Path | None, typer.Option(
        "--repo", help="junit: the git checkout the runs' commits come from (as `history --repo`).")] = None,
) -> None:
    """Export runs for pyperf, Bencher (BMF), github-action-benchmark or a CI's JUnit report."""
    from orchestrator.render.exports import FORMATS

    if format not in FORMATS:
        raise UserError(f"--format {format!r} is not one of {', '.join(FORMATS)}; pick one of those.")
    if format == "github-action-benchmark" and (out is None or out.exists() and not out.is_dir()):
        raise UserError("--format github-action-benchmark writes two files (customBiggerIsBetter.json and "
                        "customSmallerIsBetter.json): give a folder with --out DIR.")
    if format != "github-action-benchmark" and out is not None and out.is_dir():
        raise UserError(f"--out {str(out)!r} is a folder; give a file name for the {format} export.")
    from orchestrator.pipeline.history import export_inputs

    inputs = export_inputs(results, runs)
    files = _serialize(format, inputs, results, repo)
    if out is None:
        typer.echo(next(iter(files.values())), nl=False)
        return
    for name, text in files.items():
        path = out / name if format == "github-action-benchmark" else out
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        typer.echo(f"Wrote {path}", err=True)


def _serialize(format: str, inputs: ExportInputs, results: str, repo: Path | None) -> dict[str, str]:
    """Return {file name: text} of the export (one file, except github-action-benchmark's two)."""
    if format == "pyperf":
        from orchestrator.render.exports import pyperf

        for name in pyperf.left_out(inputs.benchmarks):
            typer.echo(f"topobench: {name}: no pyperf unit (descriptive, or not a time, rate or size); left out",
                       err=True)
        return {"pyperf.json": pyperf.serialize(inputs.benchmarks, inputs.metadata)}
    if format == "bmf":
        from orchestrator.render.exports import bmf

        return {"bmf.json": bmf.serialize(inputs.benchmarks) + "\n"}
    if format == "github-action-benchmark":
        from orchestrator.render.exports import github_action

        return {f"{tool}.json": text + "\n" for tool, text in github_action.serialize(inputs.benchmarks).items()}
    from orchestrator.pipeline.history import run_history
    from orchestrator.render.exports import junit

    ids = {b.key.id for b in inputs.benchmarks}
    regressions = [r for r in run_history(results, repo=repo).history.regressions()
                   if r.series.series.id in ids]
    return {"junit.xml": junit.serialize(inputs.benchmarks, regressions)}
