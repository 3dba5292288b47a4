"""Seeds of data and of models are independent: no function seeds torch's global stream (model init) and a
`torch.Generator` (data) with the same expression, which makes the data's first numbers the model's weights
(as `sae.synthetic` once did: the SAE started at the planted dictionary)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("sae", "realtime", "training", "bench", "tools", "tests")


def _seed_calls(fn: ast.AST) -> tuple[set[str], set[str]]:
    """(global seeds, generator seeds): the source of X in `torch.manual_seed(X)` and `Generator().manual_seed(X)`."""
    global_seeds, generator_seeds = set(), set()
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        if node.func.attr != "manual_seed":
            continue
        owner, seed = node.func.value, ast.unparse(node.args[0])
        if isinstance(owner, ast.Call) and ast.unparse(owner.func).endswith("Generator"):
            generator_seeds.add(seed)
        elif ast.unparse(owner) == "torch":
            global_seeds.add(seed)
    return global_seeds, generator_seeds


def collisions(source: str, name: str = "<source>") -> list[str]:
    """'name:line function(seed)' for every function whose global and generator seeds share an expression."""
    out = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            g, d = _seed_calls(node)
            out += [f"{name}:{node.lineno} {node.name}({s})" for s in sorted(g & d)]
    return out


def test_the_check_finds_the_pattern():
    bad = (
        "import torch\ndef f(seed):\n    torch.manual_seed(seed)\n"
        "    x = torch.randn(3, generator=torch.Generator().manual_seed(seed))\n"
    )
    assert collisions(bad) == ["<source>:2 f(seed)"]
    assert collisions(bad.replace("Generator().manual_seed(seed)", "Generator().manual_seed(seed + 1)")) == []


def test_no_function_seeds_data_and_model_with_one_expression():
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += collisions(path.read_text(), str(path.relative_to(ROOT)))
    assert found == []
