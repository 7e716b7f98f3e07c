"""`penny eval`: parse the options, run (or resume) the evaluation with a progress bar, write and print the report.

Registered on the `penny` app by api/cli.py; the eval library is imported only when the command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from api.terminal import console, errors, fail, settings

DEFAULT_WORK_DIR = Path("~/.cache/penny-eval")


def eval_command(
    dataset: Annotated[
        Path, typer.Argument(help="A BEIR-like folder (queries.jsonl + corpus.jsonl or docs/), or data/.")
    ],
    strategies: Annotated[str, typer.Option(help="Comma-separated: passages, llm, routed, external.")] = (
        "passages,llm,routed"
    ),
    limit: Annotated[int | None, typer.Option(help="Answer a stable sample of this many questions.")] = None,
    llm_limit: Annotated[
        int | None, typer.Option(help="Run the llm/external strategies on only the first N sampled questions.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample (the same seed gives the same questions).")] = 13,
    out: Annotated[
        Path | None, typer.Option(help="Folder for results.jsonl and the report (default: eval-out/SET).")
    ] = None,
    work_dir: Annotated[
        Path, typer.Option(help="Where ingested corpora are cached by content hash.")
    ] = DEFAULT_WORK_DIR,
    report_only: Annotated[
        bool, typer.Option(help="Answer nothing: rebuild the report from OUT/results.jsonl for this sample.")
    ] = False,
) -> None:
    """Answer a question set with each strategy and report quality against cost per answer.

    Interrupt at any time: re-running the same command resumes from OUT/results.jsonl.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from eval.report import build_report, table, write_report
    from eval.runner import RunConfig, execute, pending_steps, prepare, validate_strategies
    from eval.workspace import load_eval_set
    from penny import PennyError

    try:
        base = settings()
        config = RunConfig(
            dataset=dataset,
            out=out or Path("eval-out") / dataset.resolve().name,
            work_dir=work_dir.expanduser(),
            strategies=validate_strategies([s.strip() for s in strategies.split(",") if s.strip()], base),
            limit=limit,
            llm_limit=llm_limit,
            seed=seed,
        )
        errors.print(f"preparing {dataset} (ingested once, then cached under {config.work_dir}) ...")
        run = prepare(config, base, load_eval_set)
        steps = [] if report_only else pending_steps(run)
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=errors, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task(f"{run.eval_set.name}: answering", total=len(steps))
            execute(run, steps, lambda: bar.advance(task))
        report = build_report(run)
        written = write_report(run, report)
    except PennyError as exc:
        fail(exc)
    console.print(table(report["strategies"]))
    if report["sweep"] and report["sweep"]["operating_point"]:
        point = report["sweep"]["operating_point"]
        console.print(
            f"operating point: threshold {point['threshold']}, accuracy {point['accuracy']:.3f}, "
            f"{point['llm_share']:.0%} to the LLM"
        )
    console.print("wrote " + ", ".join(str(path) for path in written))
