"""Batch moderation of a JSONL file (``reelguard moderate``), for trust & safety and evaluation.

Input rows are ``{"id": ..., "text": "..."}``, plus any other fields a trust team keeps with them
(``label``, ``note``, ...); output rows are ``{"id", <the row's other fields>, "flagged",
"action", "categories", "category_scores", "reasons", "policy_version"}``, one per input row, in
the same order. The extra fields pass through unchanged (the input text is not repeated); a
field named like an output field is an error, since it would be overwritten. The whole input
is validated before anything is checked, and the output is written to a temporary file renamed
into place at the end, so a bad row or a crash never leaves a half-written output behind. The
temporary file (``.<output name>.<pid>.<random>.tmp`` next to the output) is removed when the
run fails or is stopped (Ctrl-C; ``reelguard moderate`` turns SIGTERM into the same exit); one
left by a run that was killed outright (``kill -9``) is removed by the next run for the same
output.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from audit.log import AuditLog
from gateway.moderations import to_result
from gateway.pipeline import TextModerator, moderation_record
from policies.jsonl import read_jsonl


class BadRow(Exception):
    """An input row that is not ``{"id": str | int, "text": str, ...}``; names file and line."""


OUTPUT_FIELDS = (
    "id",
    "flagged",
    "action",
    "categories",
    "category_scores",
    "reasons",
    "policy_version",
)
"""What each output row carries besides the input row's extra fields."""


@dataclass(frozen=True, slots=True)
class Row:
    """One input row: its id (string or integer, echoed back as given), its text, and any other
    fields it had (passed through to its output row)."""

    line: int
    id: str | int
    text: str
    extra: dict[str, Any] = field(default_factory=dict)


def read_rows(path: Path, *, max_chars: int) -> list[Row]:
    """Parse and validate every row of ``path``; raise :class:`BadRow` naming the first bad line.

    Blank lines are skipped. Ids must be unique so output rows can be joined back.
    """
    return read_jsonl(
        path,
        lambda obj, line_no, where: _row(obj, line_no, where, max_chars),
        id_of=lambda row: row.id,
        error=BadRow,
        example='{"id": "1", "text": "..."}',
    )


def _row(obj: Any, line_no: int, where: str, max_chars: int) -> Row:
    if not isinstance(obj, dict):
        raise BadRow(
            f'{where}: expected a JSON object like {{"id": "1", "text": "..."}}, got '
            f"{type(obj).__name__}"
        )
    clash = sorted(set(obj) & set(OUTPUT_FIELDS) - {"id"})
    if clash:
        raise BadRow(
            f"{where}: field(s) {', '.join(clash)} would be overwritten by the result of the same "
            f"name; rename them (e.g. expected_{clash[0].replace('/', '_')})"
        )
    rid, text = obj.get("id"), obj.get("text")
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        raise BadRow(f"{where}: 'id' must be a string or an integer (got {rid!r})")
    if "text" not in obj:
        raise BadRow(
            f"{where}: 'text' must be a string, and the row has none (its fields: "
            f"{', '.join(sorted(obj))}); put the prompt under 'text'"
        )
    if not isinstance(text, str):
        raise BadRow(f"{where}: 'text' must be a string (got {type(text).__name__})")
    if len(text) > max_chars:
        raise BadRow(
            f"{where}: 'text' has {len(text)} characters; the limit is {max_chars} "
            "(raise REELGUARD_MAX_INPUT_CHARS or shorten the row)"
        )
    extra = {k: v for k, v in obj.items() if k not in ("id", "text")}
    return Row(line=line_no, id=rid, text=text, extra=extra)


def _chunks(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


_encoder = msgspec.json.Encoder()


def moderate_rows(
    moderator: TextModerator,
    rows: Sequence[Row],
    output: Path,
    *,
    tenant: str,
    audit: AuditLog | None = None,
    batch_size: int = 32,
    on_progress: Callable[[int], None] = lambda n: None,
) -> dict[str, int]:
    """Check ``rows`` and write one output row each to ``output``; returns counts per action.

    Each decision is also written to ``audit`` (request id ``batch-<uuid>.<line>``).
    ``on_progress`` is called with the number of rows just finished.
    """
    counts = {"allow": 0, "review": 0, "block": 0}
    batch_id = f"batch-{uuid.uuid4().hex}"
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(output)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{output.name}.{os.getpid()}.", suffix=".tmp", dir=output.parent
    )
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in _chunks(rows, batch_size):
                created_at = time.time()
                outcomes = moderator.check_many([r.text for r in chunk], tenant)
                if audit is not None:
                    with audit.batch():
                        for row, outcome in zip(chunk, outcomes, strict=True):
                            audit.record_moderation(
                                moderation_record(
                                    outcome,
                                    request_id=f"{batch_id}.{row.line}",
                                    created_at=created_at,
                                )
                            )
                for row, outcome in zip(chunk, outcomes, strict=True):
                    result = to_result(outcome)
                    counts[result.action] += 1
                    out.write(
                        _encoder.encode(
                            {
                                "id": row.id,
                                **row.extra,
                                "flagged": result.flagged,
                                "action": result.action,
                                "categories": result.categories,
                                "category_scores": result.category_scores,
                                "reasons": result.reasons,
                                "policy_version": result.policy_version,
                            }
                        )
                        + b"\n"
                    )
                on_progress(len(chunk))
        os.replace(tmp_name, output)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return counts


def remove_stale_temp_files(output: Path) -> list[Path]:
    """Delete temporary files that runs writing ``output`` left behind when they were killed
    (their process is gone); returns what was deleted.

    Matches ``.<name>.<pid>.<random>.tmp`` whose process no longer runs, and the older
    ``.<name>.<random>`` form (8 characters, from before the pid was in the name).
    """
    own = re.compile(rf"\.{re.escape(output.name)}\.(\d+)\.[A-Za-z0-9_]+\.tmp")
    legacy = re.compile(rf"\.{re.escape(output.name)}\.[a-z0-9_]{{8}}")
    removed = []
    for candidate in output.parent.glob(f".{output.name}.*"):
        match = own.fullmatch(candidate.name)
        stale = legacy.fullmatch(candidate.name) is not None or (
            match is not None and not _running(int(match.group(1)))
        )
        if stale and candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
