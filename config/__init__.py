"""Process configuration, at the bottom of the import graph.

Every package may import :mod:`config` (it imports nothing of ReelGuard's), so the generator,
classifier, audit and storage layers read their settings without importing ``gateway/``, the
only package that knows HTTP. Policy (what to block) is not configuration: it lives in YAML
under ``policies/``.
"""

from config.settings import PACKAGE_POLICY, Settings, get_settings

__all__ = ["PACKAGE_POLICY", "Settings", "get_settings"]
