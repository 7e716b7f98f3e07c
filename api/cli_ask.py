"""`penny ask`: answer one question from the documents, with its citations, path, confidence and cost."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from api.terminal import console, fail, settings
from penny import Answer, PennyError


def ask(
    question: str,
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="Answer as a member of these groups (repeatable).")
    ] = None,
    strategy: Annotated[str, typer.Option(help="routed, passages, llm or external.")] = "routed",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the answer cache.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer record as JSON.")] = False,
):
    """Answer a question on the cheapest path that is still right: cache, passages, local LLM, external, or abstain."""
    from answer import Answerer

    answerer = Answerer(settings())
    answer: Answer | None = None
    streamed = False
    try:
        for item in answerer.stream(question, groups=group or None, strategy=strategy, use_cache=not no_cache):
            if isinstance(item, Answer):
                answer = item
            elif not as_json:
                console.print(item, end="", markup=False, highlight=False, soft_wrap=True)
                streamed = True
    except PennyError as exc:
        fail(exc)
    assert answer is not None
    if as_json:
        record = asdict(answer)
        console.print_json(json.dumps({"answer": record.pop("text"), **record}))
        return
    if streamed and "replaced_streamed_text" in answer.flags:
        console.print("\n\n[yellow]the generated text failed its checks; the answer is:[/yellow]")
        console.print(answer.text, markup=False, highlight=False)
    else:
        console.print()
    print_record(answer)


def print_record(answer: Answer) -> None:
    for number, cited in enumerate(answer.citations or answer.related, start=1):
        page = f", page {cited.page}" if cited.page else ""
        section = f" — {cited.section}" if cited.section else ""
        console.print(f"  [{number}] {cited.title}{section}{page}  [dim]{cited.source_path}[/dim]", highlight=False)
    cost = answer.cost
    console.print(
        f"[dim]path {answer.path} · confidence {answer.confidence:.2f} · "
        f"tokens {cost.llm_prompt_tokens}+{cost.llm_completion_tokens} · cpu {cost.cpu_seconds:.2f} s · "
        f"${cost.usd_local:.6f} local (hosted-API equivalent ${cost.usd_api_equivalent:.6f}"
        + (f", external ${cost.usd_external:.6f}" if cost.usd_external else "")
        + ")"
        + (f" · {', '.join(answer.flags)}" if answer.flags else "")
        + "[/dim]",
        highlight=False,
    )
    if answer.standalone_question and answer.standalone_question != answer.question:
        console.print(f"[dim]read as: {answer.standalone_question}[/dim]", markup=True, highlight=False)
