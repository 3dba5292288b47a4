"""What README.md and ARCHITECTURE.md name exists, spelled as they spell it.

Cheap checks of the docs' concrete claims, read from the text (edit the docs and the checks follow):

- every command line in a ```bash block or a `code span` that calls `musicsae` (or names a command, `sae train
  --resume`), `python -m training.X` or a `bench/X.py` script uses only options that command defines;
- every `--option` elsewhere in the prose belongs to some command of the project (or to a named outside tool);
- every repository path in a code span or a link (`sae/store.py`, `realtime/controls.py`, `osc.py`) exists, and
  every `#anchor` link names a heading;
- every `just RECIPE` is a recipe of the justfile;
- every OSC address the README names is one `realtime/osc.py` documents (with its type tags in `oscsend` lines),
  and the README's summary names every address the engine takes.

The `python -m` modules build their parsers inside `main`; their parsers are caught at `parse_known_args` without
running anything. The bench scripts are read, not imported (their options are `add_argument` literals).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from training.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "ARCHITECTURE.md")
# folders whose files the docs name as repository paths
REPO_DIRS = ("sae", "realtime", "training", "tools", "patches", "bench", "tests", "examples", "checkpoints")
# options of outside tools the docs quote: acids-rave's `rave`, torchrun, pip
OUTSIDE = {"--channels", "--sr", "--fidelity", "--streaming", "--nproc_per_node", "--index-url"}
FILE_ROOTS = {"", "usr", "etc", "dev", "tmp", "path", "home", "opt", "var"}  # `/usr/bin/time`: a file, not OSC
WRAPPERS = {"nice", "-n", "10", "/usr/bin/time", "-v", "timeout", "sudo"}


class _Caught(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


@cache
def module_parser(module: str) -> argparse.ArgumentParser:
    """The parser `python -m MODULE` builds, caught before it parses anything."""
    main = importlib.import_module(module).main

    def catch(self, *args, **kwargs):
        raise _Caught(self)

    original = argparse.ArgumentParser.parse_known_args
    argparse.ArgumentParser.parse_known_args = catch  # type: ignore[method-assign]
    try:
        main([])
    except _Caught as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original  # type: ignore[method-assign]
    raise AssertionError(f"{module}.main built no parser")


@cache
def script_options(script: str) -> frozenset[str]:
    """The `--options` a bench script's parser declares (string literals of its add_argument calls)."""
    tree = ast.parse((ROOT / script).read_text())
    return frozenset(
        a.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
        for a in node.args
        if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--")
    )


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def leaf(parser: argparse.ArgumentParser, words: list[str]) -> tuple[list[str], argparse.ArgumentParser]:
    """The subcommand parser `words` reach (`["concept", "find", ...]`) and the subcommand path."""
    path: list[str] = []
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or len(words) <= len(path) or words[len(path)] not in subs[0].choices:
            return path, parser
        parser = subs[0].choices[words[len(path)]]
        path.append(words[len(path)])


def all_known_options() -> set[str]:
    from training.cli.main import command_parsers

    known = set(OUTSIDE) | {"--help"}
    for parser in command_parsers(build_parser()).values():
        known |= options(parser)
    for module in sorted(set(re.findall(r"python -m (training\.[\w.]+)", "".join(doc_text(d) for d in DOCS)))):
        parser = module_parser(module)
        known |= options(parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    known |= options(sub)
    for script in sorted(set(re.findall(r"\b(bench/\w+\.py)\b", "".join(doc_text(d) for d in DOCS)))):
        known |= script_options(script)
    return known


@cache
def doc_text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of every logical line of ```bash blocks (continuations joined) and of every code span
    outside blocks."""
    out: list[tuple[int, str]] = []
    for block in re.finditer(r"```bash\n(.*?)```", text, re.S):
        first = text[: block.start(1)].count("\n") + 1
        logical, start = "", first
        for k, line in enumerate(block.group(1).splitlines()):
            if not logical:
                start = first + k
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1] + " "
                continue
            out.append((start, logical + line))
            logical = ""
    prose = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    for span in re.finditer(r"`([^`]+)`", prose):  # a span may wrap onto the next line
        out.append((prose[: span.start()].count("\n") + 1, span.group(1).replace("\n", " ")))
    return sorted(out, key=lambda item: item[0])


def commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at `&&`, `|`, `;`, `&`), comments dropped."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return []
    out: list[list[str]] = [[]]
    for w in words:
        if w in ("&&", "||", "|", ";", "&"):
            out.append([])
        else:
            out[-1].append(w)
    return [c for c in out if c]


def check_command(words: list[str], cli: argparse.ArgumentParser) -> str | None:
    """None when every option of the command exists, else what is wrong. Commands of other programs pass."""
    while words and (re.fullmatch(r"[A-Z_]+=\S*", words[0]) or words[0] in WRAPPERS):
        words = words[1:]
    if not words:
        return None
    program = words[0].removeprefix(".venv/bin/")
    if program == "python" and words[1:2] == ["-m"] and len(words) > 2 and words[2].startswith("training."):
        if words[2] == "training.cli":
            program, words = "musicsae", ["musicsae", *words[3:]]
        else:
            path, parser = leaf(module_parser(words[2]), words[3:])
            where, rest = f"python -m {' '.join([words[2], *path])}", words[3 + len(path) :]
            return _unknown(where, rest, options(parser))
    if program == "python" and len(words) > 1 and words[1].startswith("bench/"):
        words = words[1:]
    if re.fullmatch(r"bench/\w+\.py", words[0]):
        return _unknown(f"python {words[0]}", words[1:], script_options(words[0]))
    if program == "musicsae":
        words = [w for w in words[1:] if w not in ("-v", "--verbose")]
    elif not leaf(cli, words)[0]:
        return None  # other programs, prose; a span that starts with a subcommand (`sae train --resume`) is musicsae's
    path, parser = leaf(cli, words)
    if not path and words and not words[0].startswith("-") and not words[0].isupper():  # COMMAND: a placeholder
        return f"musicsae has no command {words[0]!r}"
    return _unknown(f"musicsae {' '.join(path)}".strip(), words[len(path) :], options(parser))


def _unknown(where: str, words: list[str], known: set[str] | frozenset[str]) -> str | None:
    bad = [w.split("=")[0] for w in words if w.startswith("--") and w.split("=")[0] not in known]
    return f"`{where}` has no option {', '.join(bad)} (see its --help)" if bad else None


def command_problems(name: str, text: str) -> list[str]:
    cli = build_parser()
    problems = []
    for line_no, line in code_lines(text):
        for words in commands(line):
            problem = check_command(words, cli)
            if problem:
                problems.append(f"{name}:{line_no}: {problem}")
    return problems


def stray_option_problems(name: str, text: str, known: set[str]) -> list[str]:
    """`--options` anywhere in the doc that no command of the project defines."""
    return [
        f"{name}:{text[: m.start()].count(chr(10)) + 1}: {m.group(1)} is an option of no musicsae command"
        for m in re.finditer(r"(?<![\w-])(--[a-z][a-z0-9_-]*)", text)
        if m.group(1) not in known
    ]


def path_problems(name: str, text: str) -> list[str]:
    """Repository paths in code spans and links that do not exist; `#anchors` that name no heading."""
    problems = []
    headings = {slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        target = m.group(1)
        line_no = text[: m.start()].count("\n") + 1
        if target.startswith("#"):
            if target[1:] not in headings:
                problems.append(f"{name}:{line_no}: link to #{target[1:]}: no such heading")
        elif not re.match(r"\w+://", target) and not (ROOT / target.split("#")[0]).exists():
            problems.append(f"{name}:{line_no}: link to {target}: no such file")
    prose = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    for span in re.finditer(r"`([^`\n]+)`", prose):
        line_no = prose[: span.start()].count("\n") + 1
        for word in re.split(r"[\s,]+", span.group(1)):
            word = word.rstrip(".:;")
            if re.fullmatch(rf"(?:{'|'.join(REPO_DIRS)})/[\w./-]*", word) and not (ROOT / word).exists():
                problems.append(f"{name}:{line_no}: {word}: no such file or folder")
    # the module map's first column: `realtime/controls.py`, `osc.py` (a bare name lies beside the path before it)
    for row in re.finditer(r"^\| `([^|]*)\|", text, re.M):
        line_no = text[: row.start()].count("\n") + 1
        base = None
        for word in re.findall(r"`([^`]+)`", "`" + row.group(1)):
            if "/" in word:
                base = word.rstrip("/").rsplit("/", 1)[0]
                path = word
            elif base is not None:
                path = f"{base}/{word}"
            else:
                continue
            if not (ROOT / path).exists():
                problems.append(f"{name}:{line_no}: {path}: no such file or folder")
    return problems


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def recipe_problems(name: str, text: str) -> list[str]:
    recipes = set(re.findall(r"^([a-z][\w-]*)(?:\s[^:]*)?:(?!=)", (ROOT / "justfile").read_text(), re.M))
    return [
        f"{name}:{line_no}: `just {words[1]}`: no such recipe in the justfile"
        for line_no, line in code_lines(text)
        for words in commands(line)
        if words[0] == "just" and len(words) > 1 and words[1] not in recipes
    ]


@pytest.mark.parametrize("name", DOCS)
def test_every_command_uses_options_it_has(name):
    assert command_problems(name, doc_text(name)) == []


@pytest.mark.parametrize("name", DOCS)
def test_every_option_belongs_to_a_command(name):
    assert stray_option_problems(name, doc_text(name), all_known_options()) == []


@pytest.mark.parametrize("name", DOCS)
def test_every_named_path_exists(name):
    assert path_problems(name, doc_text(name)) == []


@pytest.mark.parametrize("name", DOCS)
def test_every_just_recipe_exists(name):
    assert recipe_problems(name, doc_text(name)) == []


def unmapped_modules(text: str, root: Path = ROOT) -> list[str]:
    """Modules of the packages that ARCHITECTURE.md's module map does not name: by path in a row's first column, as a
    folder there (`realtime/musicgen/`), or by file name anywhere in a row of a module of the same folder."""
    named, folders = set(), []
    for row in re.finditer(r"^\| `([^|]*)\|(.*)$", text, re.M):
        bases = set()
        for word in re.findall(r"`([^`]+)`", "`" + row.group(1)):
            if word.endswith("/"):
                folders.append(word)
            elif "/" in word:
                named.add(word)
                bases.add(word.rsplit("/", 1)[0])
        for word in re.findall(r"`([\w]+\.(?:py|sh))`", row.group(0)):
            named |= {f"{b}/{word}" for b in bases}
    out = []
    for top in ("sae", "realtime", "training", "tools"):
        for path in sorted((root / top).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.suffix not in (".py", ".sh") or path.name == "__init__.py":
                continue
            if rel not in named and not any(rel.startswith(f) for f in folders):
                out.append(rel)
    return out


def test_the_module_map_names_every_module():
    """ARCHITECTURE.md is "the one place for each thing": a module it does not name (a CSV reader, the seeds) is one
    a developer cannot find there, and writes again (hunt 154: nine were missing)."""
    assert unmapped_modules(doc_text("ARCHITECTURE.md")) == []


def test_the_module_map_check_sees_a_missing_module(tmp_path):
    for rel in ("sae/a.py", "sae/b.py", "sae/c.py", "realtime/musicgen/d.py", "tools/e.sh", "training/x/__init__.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    text = "| `sae/a.py` | the A, with its helpers (`b.py`) |\n| `realtime/musicgen/` | all |\n"
    assert unmapped_modules(text, tmp_path) == ["sae/c.py", "tools/e.sh"]


def test_the_checks_see_a_broken_line():
    text = (
        "Run `musicsae sae train --activations s --kk 3` or `sae train --resume`.\n"
        "```bash\nmusicsae concept find g --with a \\\n    --withot b\n"
        "python -m training.musicgen.evaluate codec --model m --dataa d\n"
        "nice -n 10 python bench/nn_export.py --calls 3 --no-such\n```\n"
        "(`bench/gc_pause.py\n--blocks 2 --lbocks 3`)\n"
        "See [x](#no-heading), [y](sae/nope.py), `realtime/nope.py`, and `just tests`.\n"
        "| `realtime/controls.py`, `nope.py` | table |\n## A heading\n[z](#a-heading) `--zzz-option`\n"
    )
    assert command_problems("T", text) == [
        "T:1: `musicsae sae train` has no option --kk (see its --help)",
        "T:3: `musicsae concept find` has no option --withot (see its --help)",
        "T:5: `python -m training.musicgen.evaluate codec` has no option --dataa (see its --help)",
        "T:6: `python bench/nn_export.py` has no option --no-such (see its --help)",
        "T:8: `python bench/gc_pause.py` has no option --lbocks (see its --help)",
    ]
    assert path_problems("T", text) == [
        "T:10: link to #no-heading: no such heading",
        "T:10: link to sae/nope.py: no such file",
        "T:10: realtime/nope.py: no such file or folder",
        "T:11: realtime/nope.py: no such file or folder",
    ]
    assert recipe_problems("T", text) == ["T:10: `just tests`: no such recipe in the justfile"]
    assert stray_option_problems("T", text, {"--activations", "--kk", "--with", "--resume"})[-1].startswith(
        "T:13: --zzz-option"
    )


def osc_addresses() -> tuple[dict[str, str], set[str]]:
    """From `realtime/osc.py`'s address list: {address the engine takes: its type tags}, and every address it
    names (replies and telemetry included); `<name>`-like parts as `*`."""
    doc = ast.get_docstring(ast.parse((ROOT / "realtime" / "osc.py").read_text())) or ""
    incoming = {}
    for m in re.finditer(r"^ {4}(/\S+)((?: [a-z])*)", doc.split("\nSent to")[0], re.M):
        incoming[osc_pattern(m.group(1))] = m.group(2).strip()
    named = {osc_pattern(a) for a in re.findall(r"(?<![\w.])/[a-z][\w/<>]*", doc)}
    return incoming, named


def osc_pattern(address: str) -> str:
    """`/concept/guitar/mode`, `/concept/<name>/mode` → `/concept/*/mode` (the named parts of the space)."""
    address = re.sub(r"<[^>]*>", "*", address)
    return re.sub(r"^/(concept|feature|meter)/[^/]+", r"/\1/*", address)


def osc_problems(name: str, text: str) -> list[str]:
    """OSC addresses the doc names (code spans starting with `/`, `oscsend` lines, comments included) that the
    engine does not know, and `oscsend` lines with other type tags."""
    incoming, named = osc_addresses()
    found = [
        (line_no, line.split()[0], None)
        for line_no, line in code_lines(text)
        if line.startswith("/") and line.split("/")[1] not in FILE_ROOTS
    ]
    for m in re.finditer(r"oscsend \S+ \d+ (/\S+)(?: ([a-z]+)\b)?", text):
        found.append((text[: m.start()].count("\n") + 1, m.group(1), m.group(2)))
    problems = []
    for line_no, head, tags in sorted(found, key=lambda item: item[0]):
        prefix, _, last = head.rpartition("/")
        for part in last.split("|"):  # `/concept/<name>/mode|strength|gain`
            address = osc_pattern(f"{prefix}/{part}")
            if address not in named:
                problems.append(f"{name}:{line_no}: {address}: not an OSC address of realtime/osc.py")
            elif tags is not None and incoming.get(address) != tags:
                problems.append(f"{name}:{line_no}: {address} takes {incoming.get(address)!r}, not {tags!r}")
    return problems


def test_every_osc_address_exists():
    assert osc_problems("README.md", doc_text("README.md")) == []


def test_the_readme_lists_every_osc_address():
    """The README's summary of the address space names every address the engine takes."""
    listed = {osc_pattern(a) for a in re.findall(r"`(/[^`\s]+)", doc_text("README.md"))}
    listed |= {osc_pattern(f"{a.rpartition('/')[0]}/{p}") for a in listed for p in a.rpartition("/")[2].split("|")}
    assert sorted(set(osc_addresses()[0]) - listed) == []


def test_the_osc_check_sees_a_wrong_address():
    text = "`/concept/<name>/mode|strenght`, `/mix`, `/mixx f`\n```bash\noscsend localhost 9000 /mix s a\n```\n"
    assert osc_problems("T", text) == [
        "T:1: /concept/*/strenght: not an OSC address of realtime/osc.py",
        "T:1: /mixx: not an OSC address of realtime/osc.py",
        "T:3: /mix takes 'f', not 's'",
    ]
