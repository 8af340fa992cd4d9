"""Pure helpers on Kubernetes API objects (plain dicts) shared by sandbox components.

The API server (validation) and the controllers both need them; living here, neither
imports the other's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def label_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a `metav1.LabelSelector` (matchLabels + matchExpressions) selects `labels`.

    As in Kubernetes, an empty selector selects everything; callers for which that is
    wrong (a workload never owns everything) check emptiness first.
    """
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key", ""), e.get("operator", ""), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
