"""The details an examiner gives a case at creation (number, examiner, description).

They are one ``case details`` entry in the case's audit log (so ``--verify`` covers them); the
report's heading shows them (issue 37, M8) instead of only the sanitised folder name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ACTION_CASE_DETAILS = "case details"
FIELDS = (("case_number", "Case number"), ("examiner", "Examiner"),
          ("description", "Description"))


def case_details(audit: Iterable[Any]) -> dict[str, str]:
    """The latest ``case details`` entry's fields that are set ({} when none)."""
    found: dict[str, str] = {}
    for entry in audit:
        if entry.action == ACTION_CASE_DETAILS:
            found = {k: str(entry.params.get(k) or "").strip() for k, _ in FIELDS}
    return {k: v for k, v in found.items() if v}
