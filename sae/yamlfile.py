"""Parsing the YAML files users write by hand (concept banks, presets, job and prompt lists), with one-line errors.

PyYAML keeps the last of two equal keys in one mapping without a word: a concept copied to make a variant and not
renamed replaced the first one (and the next save of the bank dropped it for good), a job's second `prompt:` won.
Here a key given twice is refused naming both lines, and a syntax error names its line and column. So is an integer
that YAML 1.1 reads other than as written: `017` is octal 15, `1:10` base-60 70, `0x2` hex (a zero-padded feature
index steered another feature).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from sae.errors import UserError

MERGE_TAG = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    """A key given twice in one mapping, an integer not in decimal digits (raised inside the loader, worded by
    `parse_yaml`)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (a `<<` merge may still be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error names it below
                continue
            if first is not None:
                raise _Refused(
                    f"line {key_node.start_mark.line + 1}: key {key!r} given twice in one mapping (first at line "
                    f"{first + 1}); YAML would keep only the last: rename or remove one"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        value = super().construct_yaml_int(node)
        if not re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", text):
            raise _Refused(
                f"line {node.start_mark.line + 1}: {text} reads as {value} in YAML (octal, hex, base 60 or with _); "
                "write the number in plain decimal digits"
            )
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        text = str(self.construct_scalar(node))
        value = super().construct_yaml_float(node)
        if "_" in text or ":" in text:  # `1_000.0` and `1:30.0` (base 60), as the integers (hunt 157)
            raise _Refused(
                f"line {node.start_mark.line + 1}: {text} reads as {value:g} in YAML (base 60 or with _); write the "
                "number in plain decimal digits"
            )
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def parse_yaml(text: str, where: str, what: str = "valid YAML") -> Any:
    """The YAML document in `text`; a syntax error is `{where}: not {what} (line L, column C: problem)` and a key
    given twice in one mapping `{where}: line L: key ... given twice ...`, each one `UserError` line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except _Refused as exc:
        raise UserError(f"{where}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or type(exc).__name__).split())
        raise UserError(f"{where}: not {what} ({at}{problem})") from None
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{where}: not {what} ({first})") from None
    except ValueError as exc:  # an integer of more than 4300 digits (Python's limit), a date such as 2024-13-01
        raise UserError(f"{where}: not {what} ({str(exc).split(':')[0]})") from None
    except RecursionError:  # a value inside hundreds of brackets (hunt 180)
        raise UserError(f"{where}: not {what} (nested too deeply to read)") from None
