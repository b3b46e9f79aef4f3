"""One reader for the JSONL prompt files that ``reelguard moderate`` and ``policy test|diff`` take.

Both read one JSON object per line, skip blank lines, name ``file:line`` in every error, and need
unique ids so output rows can be joined back; they differ only in the fields a row may carry,
which the caller's ``parse`` function checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def read_jsonl(
    path: Path,
    parse: Callable[[Any, int, str], T],
    *,
    id_of: Callable[[T], Hashable],
    error: type[Exception],
    example: str,
) -> list[T]:
    """Rows of the JSONL file ``path``, each built by ``parse(obj, line_no, "file:line")``.

    Raises ``error`` naming the file (and line) for an unreadable file, a line that is not JSON,
    and a repeated id; ``parse`` raises ``error`` itself for a bad row. ``example`` is a one-row
    sample shown in the JSON error, e.g. ``{"id": "1", "text": "..."}``.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise error(f"{path}: file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read ({exc}); save it as UTF-8 JSONL") from None
    rows: list[T] = []
    seen: dict[Hashable, int] = {}
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(
                f"{where}: not valid JSON ({exc.msg}); each line must be one JSON object like "
                f"{example}"
            ) from None
        row = parse(obj, line_no, where)
        rid = id_of(row)
        if rid in seen:
            raise error(f"{where}: id {rid!r} already used on line {seen[rid]}; ids must be unique")
        seen[rid] = line_no
        rows.append(row)
    return rows
