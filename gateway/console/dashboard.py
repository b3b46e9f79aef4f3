"""The console's policy pages (active YAML per tenant and the versions seen in the log) and
the dashboard (decisions per day, backlog and its age, frame withhold rate; SVG charts)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery

from audit import insights
from gateway.console.charts import ACTION_COLOURS, Series, colour_for, stacked_bars
from gateway.console.common import DASHBOARD_DAYS, console, render_page, require_session
from gateway.console.item_routes import bad_filter, visible_tenants
from gateway.console.views import (
    KINDS,
)
from gateway.problems import Problem

log = logging.getLogger("reelguard.console")


@get("/policies", sync_to_thread=True)
def policies_page(request: Request[Any, Any, State]) -> Response[str]:
    """The tenants this reviewer sees, with the policy version each is served."""
    session = require_session(request)
    state = request.app.state
    c = console(state)
    versions = state.policies.versions()
    rows = [
        (t, versions.get(t) or state.policies.get(t).version)
        for t in visible_tenants(c, session, state)
    ]
    return render_page(request, "policies.html", session=session, nav="policies", rows=rows)


@get("/policies/{tenant:str}", sync_to_thread=True)
def policy_page(request: Request[Any, Any, State], tenant: FromPath[str]) -> Response[str]:
    """A tenant's active policy (overlays merged, as YAML), its version and the versions the
    audit log saw before."""
    session = require_session(request)
    state = request.app.state
    c = console(state)
    if tenant not in visible_tenants(c, session, state):
        raise Problem(404, "not-found", f"No tenant {tenant!r}.")
    resolved = state.policies.get(tenant)
    text = yaml.safe_dump(
        resolved.policy.canonical(),
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=None,
    )
    changes = list(reversed(c.audit.policy_changes(tenant)))
    return render_page(
        request,
        "policy.html",
        session=session,
        nav="policies",
        tenant=tenant,
        version=resolved.version,
        sources=[str(p) for p in resolved.sources],
        policy_yaml=text,
        changes=changes,
    )


# -- dashboard -----------------------------------------------------------------------------------


def _days(n: int, now: float) -> list[str]:
    today = datetime.fromtimestamp(now, UTC).date()
    return [(today - timedelta(days=n - 1 - i)).isoformat() for i in range(n)]


@get("/dashboard", sync_to_thread=True)
def dashboard(request: Request[Any, Any, State], days: FromQuery[int] = 14) -> Response[str]:
    """Decisions per day by action and category, the review backlog and its age, and the frame
    withhold rate, as SVG charts with the same figures in tables."""
    session = require_session(request)
    if days not in DASHBOARD_DAYS:
        raise bad_filter("days", str(days), DASHBOARD_DAYS)
    c = console(request.app.state)
    scope = session.reviewer.scope()
    now = time.time()
    labels = _days(days, now)
    since = datetime.fromisoformat(labels[0]).replace(tzinfo=UTC).timestamp()
    short = [d[5:] for d in labels]

    with c.audit.snapshot() as tx:
        decisions = insights.decisions_per_day(tx, since, scope)
        flags = insights.flags_per_day(tx, since, scope)
        withheld = insights.frame_withhold_rate(tx, since, scope)
    by_action = {
        a: tuple(
            float(sum(x.count for x in decisions if x.day == d and x.key == a)) for d in labels
        )
        for a in ("allow", "review", "block")
    }
    categories = sorted({f.key for f in flags})
    by_category = {
        cat: tuple(
            float(sum(x.count for x in flags if x.day == d and x.key == cat)) for d in labels
        )
        for cat in categories
    }
    rates = {r.day: r for r in withheld}
    items = [i for i in c.audit.queue(None) if session.reviewer.can_see(i.tenant)]
    buckets: tuple[tuple[str, float, float], ...] = (
        ("under 1 h", 0.0, 3600.0),
        ("1-24 h", 3600.0, 86400.0),
        ("1-7 d", 86400.0, 7 * 86400.0),
        ("over 7 d", 7 * 86400.0, float("inf")),
    )
    age_rows = [
        (
            label,
            {k: sum(1 for i in items if i.kind == k and lo <= now - i.since < hi) for k in KINDS},
        )
        for label, lo, hi in buckets
    ]
    charts = {
        "actions": stacked_bars(
            "chart-actions",
            "Prompt decisions per day by action",
            f"Stacked bars for the last {days} days: allow, review and block decisions.",
            short,
            [Series(a, ACTION_COLOURS[a], v) for a, v in by_action.items()],
        ),
        "categories": stacked_bars(
            "chart-categories",
            "Flagged requests per day by category",
            f"Stacked bars for the last {days} days: requests or videos sent to review or "
            "blocked, once per category.",
            short,
            [Series(cat, colour_for(i), v) for i, (cat, v) in enumerate(by_category.items())],
        ),
        "backlog": stacked_bars(
            "chart-backlog",
            "Review backlog by age",
            "Items awaiting review, by how long they have waited, withheld videos and prompts.",
            [label for label, *_ in buckets],
            [
                Series(KINDS[k], colour_for(i), tuple(float(r[1][k]) for r in age_rows))
                for i, k in enumerate(KINDS)
            ],
        ),
        "withhold": stacked_bars(
            "chart-withhold",
            "Frame withhold rate per day",
            f"Share of frame audits that withheld the video, last {days} days.",
            short,
            [
                Series(
                    "withheld",
                    ACTION_COLOURS["block"],
                    tuple(rates[d].rate if d in rates else 0.0 for d in labels),
                )
            ],
            percent=True,
        ),
    }
    oldest = min((i.since for i in items), default=None)
    return render_page(
        request,
        "dashboard.html",
        session=session,
        nav="dashboard",
        days=days,
        choices=DASHBOARD_DAYS,
        labels=labels,
        charts=charts,
        by_action=by_action,
        by_category=by_category,
        colours={a: ACTION_COLOURS[a] for a in by_action}
        | {cat: colour_for(i) for i, cat in enumerate(by_category)},
        kind_colours={KINDS[k]: colour_for(i) for i, k in enumerate(KINDS)},
        rates=rates,
        backlog=len(items),
        oldest_age=None if oldest is None else now - oldest,
        age_rows=age_rows,
    )


# -- the reviewer's account ----------------------------------------------------------------------
