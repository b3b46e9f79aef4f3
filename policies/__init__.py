"""Policy schema (YAML), tenant overlays, versions, and the decision engine."""

from policies.decision import Action, Decision, Reason

__all__ = ["Action", "Decision", "Reason"]
