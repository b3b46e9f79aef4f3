"""Limits on what a policy file may ask of the server (README: "Limits a deployment gets by
default").

Policy files come from trust & safety teams and tenant folders: they are input, and no input may
stall or exhaust the server. Each limit is checked when a file is loaded, so a file over one is
refused with its line and the fix, like any other mistake, and the previous policy keeps
serving. Only the file size is a setting (``REELGUARD_POLICY_MAX_BYTES``); the others bound the
work every prompt costs and are the same everywhere.
"""

from __future__ import annotations

MAX_FILE_BYTES = 1024 * 1024
"""Largest policy file read (bytes; ``REELGUARD_POLICY_MAX_BYTES``). The shipped default is
about 6 KB."""

MAX_YAML_DEPTH = 16
"""Deepest nesting of mappings and lists in a policy file (the format needs 6)."""

MAX_TERMS = 2_000
"""Most ``terms`` in one resolved policy, blocklists and allowlists of every category together.
Each term is a scan of every prompt (twice: as sent and normalised)."""

MAX_TERM_CHARS = 200
"""Longest term (characters)."""

MAX_PATTERNS = 100
"""Most regex ``patterns`` in one resolved policy, all lists together."""

MAX_PATTERN_PROGRAM = 20_000
"""Most RE2 instructions (``programsize``) of all patterns of one resolved policy together. A
scan of a prompt costs at most about this many steps per character, whatever the patterns."""

MAX_PATTERN_CHARS = 1_000
"""Longest regex pattern (characters)."""

PATTERN_MAX_MEM = 256 * 1024
"""RE2 memory budget per pattern (bytes): its compiled program and matching cache. A pattern
whose program does not fit is refused; a search that outgrows the cache stays linear-time."""
