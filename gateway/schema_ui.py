"""``/schema``: the OpenAPI documentation, served entirely from the installed packages.

Litestar's render plugins load their JavaScript and CSS from public CDNs by default, so the page
is blank on a machine without internet (where a self-hosted gateway often runs). Here Swagger UI
comes from the ``swagger-ui-bundle`` wheel and is served under ``/schema/assets/``; the page
names no other host. ``/schema/openapi.json`` and ``/schema/openapi.yaml`` are the document.
"""

from __future__ import annotations

from litestar import Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin, YamlRenderPlugin
from litestar.static_files import create_static_files_router

SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"


def openapi_config(title: str, version: str, description: str) -> OpenAPIConfig:
    """OpenAPI served at ``/schema`` (Swagger UI, also at ``/schema/swagger``) with local assets."""
    swagger = SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        path="/swagger",
    )
    return OpenAPIConfig(
        title=title,
        version=version,
        description=description,
        path=SCHEMA_PATH,
        render_plugins=[swagger, YamlRenderPlugin()],
    )


def assets_router() -> Router:
    """The Swagger UI files from the ``swagger-ui-bundle`` package, at ``/schema/assets/``."""
    from swagger_ui_bundle import swagger_ui_path

    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[str(swagger_ui_path)],
        name="schema-assets",
        include_in_schema=False,
    )
