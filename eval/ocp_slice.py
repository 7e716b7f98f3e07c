"""Build a bounded slice of ocp-4.15 as a BEIR-like folder that `penny eval` reads: `docs/` holds the chosen guides'
folders (copied, so document keys stay relative to the slice) and `queries.jsonl`/`answers.jsonl` the questions
whose `metadata.doc_title` names one of those guides.

    python -m eval.ocp_slice /tmp/ocp-slice            # the ten default guides
    python -m eval.ocp_slice OUT --guide Registry=registry --guide Images=openshift_images
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from eval.datasets import shared_data_dir

# question doc_title -> docs/ folder: the smallest guides with questions, so the slice ingests in minutes
GUIDES = {
    "Getting Started": "getting_started",
    "Registry": "registry",
    "Specialized Hardware And Driver Enablement": "hardware_enablement",
    "Hosted Control Planes": "hosted_control_planes",
    "Web Console": "web_console",
    "Architecture": "architecture",
    "Images": "openshift_images",
    "Cli Tools": "cli_reference",
    "Authentication And Authorization": "authentication",
    "Support": "support",
}


def build_slice(source: Path, out: Path, guides: dict[str, str]) -> int:
    """Write the slice into `out` (replacing its docs/ and question files); return the number of questions."""
    missing = [folder for folder in guides.values() if not (source / "docs" / folder).is_dir()]
    if missing:
        raise SystemExit(f"no such guide folders under {source / 'docs'}: {', '.join(missing)}")
    docs = out / "docs"
    if docs.exists():
        shutil.rmtree(docs)
    for folder in guides.values():
        shutil.copytree(source / "docs" / folder, docs / folder)
    kept = _filter_jsonl(
        source / "queries.jsonl", out / "queries.jsonl", lambda row: row.get("metadata", {}).get("doc_title") in guides
    )
    _filter_jsonl(source / "answers.jsonl", out / "answers.jsonl", lambda row: row["_id"] in kept)
    return len(kept)


def _filter_jsonl(source: Path, target: Path, keep) -> set[str]:
    kept = set()
    with open(source, encoding="utf-8") as reader, open(target, "w", encoding="utf-8") as writer:
        for line in reader:
            if line.strip() and keep(row := json.loads(line)):
                kept.add(row["_id"])
                writer.write(line if line.endswith("\n") else line + "\n")
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the slice folder to write (e.g. /tmp/ocp-4.15-slice10)")
    parser.add_argument("--source", type=Path, default=shared_data_dir() / "ocp-4.15")
    parser.add_argument(
        "--guide",
        action="append",
        default=[],
        metavar="TITLE=FOLDER",
        help="a guide to include instead of the defaults (repeat)",
    )
    args = parser.parse_args()
    guides = dict(item.split("=", 1) for item in args.guide) if args.guide else GUIDES
    args.out.mkdir(parents=True, exist_ok=True)
    count = build_slice(args.source, args.out, guides)
    print(f"{args.out}: {len(guides)} guides, {count} questions")


if __name__ == "__main__":
    main()
