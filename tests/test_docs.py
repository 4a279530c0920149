"""The README and docs/ hold together: links resolve, every page is reachable, JSON fields exist.

* every relative link (``[text](target)``, ``![alt](image)``, with an optional ``#anchor``) in
  README.md and docs/*.md points at a file of the repository, and an anchor at a heading of it;
* every file in docs/ (pages and images) is linked from README.md or from a page README links;
  every page in docs/ is linked from README.md itself;
* no link leaves the repository (``../shared`` and the like: a user does not have it);
* the README stays short and starts with the two set-up commands;
* every field the JSON reports write is described in docs/json-schema.md;
* docs/architecture.md lists every module of the package with the tblive modules it imports
  (read from the code with ``ast``: at load time, and lazily inside functions).

``python tests/test_docs.py`` rewrites the module table of docs/architecture.md from the code.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def links(page: Path) -> Iterator[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
    for match in LINK.finditer(text):
        yield match.group(1)


def relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")


def anchors(page: Path) -> Set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            found.add(title.replace(" ", "-"))
    return found


def resolved(page: Path, target: str) -> Tuple[Path, str]:
    path, _, anchor = target.partition("#")
    return (page.parent / path).resolve() if path else page.resolve(), anchor


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken: List[str] = []
    for target in links(page):
        if not relative(target):
            if target.startswith("#") and target[1:] not in anchors(page):
                broken.append("%s (no such heading)" % target)
            continue
        path, anchor = resolved(page, target)
        if ROOT not in path.parents:
            broken.append("%s (outside the repository)" % target)
        elif not path.exists():
            broken.append("%s (no such file)" % target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append("%s (no such heading)" % target)
    assert not broken, "%s: %s" % (page.name, ", ".join(broken))


def test_every_docs_file_is_reachable_from_the_readme() -> None:
    readme = ROOT / "README.md"
    from_readme = {resolved(readme, t)[0] for t in links(readme) if relative(t)}
    reachable = set(from_readme)
    for page in DOCS.glob("*.md"):
        reachable |= {resolved(page, t)[0] for t in links(page) if relative(t)}
    pages = {p.resolve() for p in DOCS.glob("*.md")}
    assert not pages - from_readme, "not linked from README.md: %s" % sorted(
        p.name for p in pages - from_readme
    )
    files = {p.resolve() for p in DOCS.iterdir() if p.is_file()}
    assert not files - reachable, "not linked from anywhere: %s" % sorted(
        p.name for p in files - reachable
    )


def test_no_page_points_at_files_a_user_does_not_have() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "../shared" not in text and "/work/" not in text, page.name


def test_readme_is_short_and_starts_with_the_two_set_up_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 210
    first_block = FENCE.search(text)
    assert first_block is not None and text.index(first_block.group(0)) < 1200
    commands = first_block.group(0)
    assert "pip install . && tblive report examples/logs" in commands
    assert 'pip install -e ".[test]" && python3 -m pytest' in commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -e ".[test]" && python3 -m pytest' in ci


def _keys(value, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            if key not in ("metric_stats", "details", "roles", "skipped", "metrics", "checks"):
                yield from _keys(item)
    elif isinstance(value, list):
        for item in value[:3]:
            yield from _keys(item)


def test_every_json_field_is_documented() -> None:
    schema = (DOCS / "json-schema.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+)`", schema))
    examples = ROOT / "examples" / "logs"
    outputs = []
    for args in (
        ["report", str(examples / "mapush_failed")],
        ["report", str(examples)],
        ["compare", str(examples / "mapush_failed"), str(examples / "mapush_healthy")],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "tblive.cli", *args, "--json", "-"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(json.loads(result.stdout))
    stats = outputs[0]["metric_stats"]
    fields = set()
    for output in outputs:
        fields |= set(_keys(output))
    fields |= set(next(iter(stats.values())))
    missing = sorted(fields - documented)
    assert not missing, "fields not described in docs/json-schema.md: %s" % missing


# -- the architecture table --------------------------------------------------------------------


def module_imports() -> Dict[str, Tuple[Set[str], Set[str]]]:
    """``{module: (imported at load, imported lazily)}`` for every module of ``tblive``.

    Names are relative to the package (``read.records``); imports under ``TYPE_CHECKING`` are
    not counted; ``from tblive import x`` counts as the package itself (``tblive``).
    """
    found: Dict[str, Tuple[Set[str], Set[str]]] = {}
    package = ROOT / "tblive"
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts) or "tblive"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        eager: Set[str] = set()
        lazy: Set[str] = set()

        def visit(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.dump(child.test):
                    continue
                names: List[str] = []
                if isinstance(child, ast.ImportFrom) and child.module and not child.level:
                    # ``from tblive.render import plots`` imports the module render.plots
                    base = ROOT.joinpath(*child.module.split("."))
                    names = [
                        "%s.%s" % (child.module, alias.name)
                        if (base / (alias.name + ".py")).is_file() or (base / alias.name).is_dir()
                        else child.module
                        for alias in child.names
                    ]
                elif isinstance(child, ast.Import):
                    names = [alias.name for alias in child.names]
                for name in names:
                    if name == "tblive" or name.startswith("tblive."):
                        short = name[len("tblive.") :] if name != "tblive" else "tblive"
                        if short != module:
                            (lazy if in_function else eager).add(short)
                inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                visit(child, inner)

        visit(tree, False)
        found[module] = (eager, lazy - eager)
    return found


def architecture_rows() -> Dict[str, Tuple[Set[str], Set[str]]]:
    """The table of docs/architecture.md: ``| `module` | owns | imports | lazily |``."""
    rows = {}
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[0].endswith("`"):
            names = [set(re.findall(r"`([\w.]+)`", cell)) for cell in cells[2:]]
            rows[cells[0].strip("`")] = (names[0], names[1])
    return rows


def test_architecture_table_matches_the_imports() -> None:
    code = module_imports()
    documented = architecture_rows()
    missing = sorted(set(code) - set(documented))
    stale = sorted(set(documented) - set(code))
    assert not missing and not stale, "docs/architecture.md: add %s, remove %s" % (missing, stale)
    wrong = [
        "%s: imports %s, lazily %s" % (m, sorted(code[m][0]), sorted(code[m][1]))
        for m in sorted(code)
        if code[m] != documented[m]
    ]
    assert not wrong, "docs/architecture.md rows to update:\n" + "\n".join(wrong)


#: layer of each top-level part, in pipeline order (package-level helpers: -1, usable anywhere)
LAYERS = {
    "read": 0,
    "series": 1,
    "judge": 2,
    "run": 3,
    "alert": 4,
    "render": 5,
    "doors": 6,
    "cli": 7,
}
#: the imports against the pipeline that docs/architecture.md explains
UPWARD_ALLOWED = {("read.runs", "series.feed"), ("alert.engine", "render.plots")}


def test_imports_follow_the_pipeline() -> None:
    def layer(module: str) -> int:
        return LAYERS.get(module.split(".")[0], -1)

    upward = sorted(
        (module, target)
        for module, (eager, lazy) in module_imports().items()
        for target in eager | lazy
        if layer(target) > layer(module)
        or (layer(module) == -1 and module != "tblive" and layer(target) != -1)
    )
    assert set(upward) <= UPWARD_ALLOWED, "imports against the pipeline: %s" % upward


def _owns(module: str) -> str:
    """The first paragraph of a module's docstring, as a table cell."""
    parts = [] if module == "tblive" else module.split(".")
    path = ROOT.joinpath("tblive", *parts)
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    doc = ast.get_docstring(ast.parse(source.read_text(encoding="utf-8"))) or ""
    first = doc.split("\n\n")[0].replace("\n", " ")
    first = re.sub(r":\w+:`~?([^`]+)`", lambda m: "`%s`" % m.group(1).split(".")[-1], first)
    return first.replace("``", "`").replace("|", "/")


def write_architecture_table() -> None:
    """Rewrite the generated part of docs/architecture.md from the code."""
    groups = [("package level", ["tblive", "atomic", "errors", "run", "textfmt"])]
    imports = module_imports()
    for part in ("read", "series", "judge", "alert", "render", "doors"):
        members = [m for m in imports if m == part or m.startswith(part + ".")]
        groups.append(("`tblive/%s/`" % part, members))
    groups.append(("`tblive/cli.py`", ["cli"]))
    listed = {m for _, members in groups for m in members}
    assert listed == set(imports), sorted(set(imports) - listed)
    lines = []
    for title, members in groups:
        lines += ["", "### %s" % title, ""]
        lines += ["| module | owns | imports (tblive) | imports lazily |", "|---|---|---|---|"]
        for module in members:
            cells = [", ".join("`%s`" % n for n in sorted(g)) or "-" for g in imports[module]]
            lines.append("| `%s` | %s | %s | %s |" % (module, _owns(module), *cells))
    page = DOCS / "architecture.md"
    start, end = "<!-- modules: generated -->", "<!-- /modules -->"
    text = page.read_text(encoding="utf-8")
    body = "%s\n%s\n\n%s" % (start, "\n".join(lines), end)
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: body, text, flags=re.S)
    page.write_text(text, encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    write_architecture_table()
    print("docs/architecture.md: module table rewritten from the code")
