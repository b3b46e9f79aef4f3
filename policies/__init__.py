"""Policy schema (YAML), tenant overlays, versions, and the decision engine.

The public surface: :func:`load_policy` / :class:`PolicyStore` give a :class:`ResolvedPolicy`;
:func:`decide` applies it to classifier verdicts and returns a :class:`Decision`. Problems in a
policy file raise :class:`PolicyError`, whose issues name file, line, field and fix.
"""

from policies.decision import Action, Decision, Reason
from policies.engine import decide
from policies.loader import PolicyError, PolicyIssue, load_policy
from policies.resolved import ResolvedPolicy
from policies.store import PolicyStore, PolicyWatcher

__all__ = [
    "Action",
    "Decision",
    "PolicyError",
    "PolicyIssue",
    "PolicyStore",
    "PolicyWatcher",
    "Reason",
    "ResolvedPolicy",
    "decide",
    "load_policy",
]
