"""Answer.flags come from one vocabulary, penny.FLAGS: every flag the answer package raises is named there, and
every name there is raised somewhere (read from the source, so a new flag cannot slip past undocumented)."""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

from penny import FLAGS, flag_name

ANSWER = Path(__file__).resolve().parents[1] / "answer"


def _pattern(node: ast.AST) -> str | None:
    """A flag expression as a glob: f"{path}_timeout" -> "*_timeout"; None when it is not a string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "*" for part in node.values)
    return None


def _flag_expressions(tree: ast.AST) -> list[ast.AST]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append":
            if isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "flags":
                found += node.args
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Attribute) and node.target.attr == "flags":
            found += getattr(node.value, "elts", [])
        elif isinstance(node, ast.keyword | ast.Assign):
            named_flags = (isinstance(node, ast.keyword) and node.arg == "flags") or (
                isinstance(node, ast.Assign) and any(getattr(t, "attr", None) == "flags" for t in node.targets)
            )
            if named_flags:
                found += [e for item in ast.walk(node.value) if isinstance(item, ast.List) for e in item.elts]
    return found


def raised_patterns() -> set[str]:
    patterns = set()
    for path in sorted(ANSWER.glob("*.py")):
        for node in _flag_expressions(ast.parse(path.read_text())):
            pattern = _pattern(node)
            if pattern is not None:
                patterns.add(flag_name(pattern))
    return patterns


def test_every_raised_flag_is_in_the_vocabulary_and_every_name_is_raised():
    patterns = raised_patterns()
    assert {"replaced_streamed_text", "cached_from", "*_timeout"} <= patterns  # the scan sees all three forms
    undocumented = {p for p in patterns if not any(fnmatch(name, p) for name in FLAGS)}
    unused = {name for name in FLAGS if not any(fnmatch(name, p) for p in patterns)}
    assert (undocumented, unused) == (set(), set())


def test_flag_name_drops_the_detail():
    assert flag_name("cached_from:passages") == "cached_from" and flag_name("escalated") == "escalated"
    assert flag_name("unsupported_numbers:12,30") in FLAGS
