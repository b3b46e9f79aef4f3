"""Every built-in video backend, in one explicit dict.

``BACKENDS[name](settings)`` builds a backend; ``settings.generator_backend`` picks the default.
Backend modules are imported lazily so the embedded backend never pulls in HTTP clients and the
remote backend never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable

from config.settings import Settings
from generator.base import VideoBackend


def _embedded(settings: Settings) -> VideoBackend:
    from generator.embedded.backend import EmbeddedBackend

    return EmbeddedBackend.from_settings(settings)


def _diffusers(settings: Settings) -> VideoBackend:
    from generator.diffusers_backend import DiffusersBackend

    return DiffusersBackend.from_settings(settings)


def _remote(settings: Settings) -> VideoBackend:
    from generator.remote import RemoteBackend

    return RemoteBackend.from_settings(settings)


BACKENDS: dict[str, Callable[[Settings], VideoBackend]] = {
    "embedded": _embedded,
    "diffusers": _diffusers,
    "remote": _remote,
}


def get_backend(settings: Settings, name: str | None = None) -> VideoBackend:
    """Build the backend ``name`` (default ``settings.generator_backend``).

    Raises ``KeyError`` with the known names when ``name`` is not registered.
    """
    chosen = name or settings.generator_backend
    try:
        factory = BACKENDS[chosen]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise KeyError(f"unknown generator backend {chosen!r}; choose one of: {known}") from None
    return factory(settings)
