"""The inbox's pages and JSON API (aiohttp, server-rendered Jinja2, works without JavaScript).

Every action is validated with the contract's ``FollowupAction`` model and produced to
``followup-actions``; the worker stays the owner of the follow-up state, and the page
shows the new state when its ``followup-events`` record reaches the read model (until
then the action is listed as sent). A form's ``action_id`` is made when the page is
rendered, so a double submit is one action (the worker ignores repeated ids).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from jinja2 import Environment, PackageLoader, pass_context, select_autoescape
from markupsafe import Markup
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from alerts.concessions import over_cap, playbook_cap
from alerts.followup import WAITING
from alerts.notify.render import money
from schemas.common import format_timestamp
from schemas.inputs import FollowupAction
from stream.inbox.api import QUERY, ActionRequest, openapi
from stream.inbox.auth import Authority, Principal
from stream.readmodel.db import ReadModel
from stream.settings import Settings

log = logging.getLogger(__name__)
COOKIE = "survey_alerts_session"
LOGIN_COOKIE = "survey_alerts_login"
ACTIONS = ("acknowledged", "contacted", "resolved", "reopened", "note")
_ACTION_ID = re.compile(r"^act_[0-9a-f]{32}$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL = web.RequestKey("principal", Principal)


def _num(value: float | None) -> str:
    """A score as written: 6, not 6.0."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _when(epoch: float | None, zone: str | None = None) -> Markup:
    """A time as a ``<time>`` element: in ``zone`` (the user's, from the users file) with UTC on
    hover; without a zone in UTC, marked for ``times.js`` to show it in the browser's zone."""
    if epoch is None:
        return Markup("unknown")
    at = datetime.fromtimestamp(epoch, UTC)
    utc = at.strftime("%Y-%m-%d %H:%M UTC")
    iso = format_timestamp(at.replace(microsecond=0))
    if zone is None:
        return Markup('<time datetime="{}" title="{}" data-local>{}</time>').format(iso, utc, utc)
    local = at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, utc, local)


def _tel(phone: str | None) -> str | None:
    """A ``tel:`` link of a phone number as written (digits and a leading +), or None."""
    digits = re.sub(r"[^0-9]", "", phone or "")
    if not digits:
        return None
    return "tel:" + ("+" if (phone or "").strip().startswith("+") else "") + digits


def _mailto(email: str | None) -> str | None:
    """A ``mailto:`` link of an address (nothing after it: no subject or body can be smuggled in)."""
    if not email or "@" not in email:
        return None
    return "mailto:" + quote(email.strip(), safe="@.+-_")


@pass_context
def _when_for(context: Any, epoch: float | None) -> Markup:
    user = context.get("user")
    return _when(epoch, getattr(user, "timezone", None))


def _relative(epoch: float | None, now: float) -> str:
    if epoch is None:
        return ""
    delta = epoch - now
    minutes = abs(delta) / 60
    text = (
        f"{minutes:.0f} min"
        if minutes < 90
        else f"{minutes / 60:.1f} h"
        if minutes < 48 * 60
        else f"{minutes / 1440:.0f} d"
    )
    return f"in {text}" if delta >= 0 else f"{text} ago"


class Inbox:
    """The web application: pages, API, and the producer of actions."""

    def __init__(
        self,
        settings: Settings,
        model: ReadModel,
        authority: Authority,
        send_action: Callable[[dict[str, Any]], Awaitable[None]],
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self.model = model
        self.auth = authority
        self.send_action = send_action
        self.registry = registry
        self.clock = clock
        self.ready = ready
        self.key_value = settings.key_account_value
        self.key_tiers = settings.key_tiers
        self.env = Environment(
            loader=PackageLoader("stream.inbox", "templates"), autoescape=select_autoescape()
        )
        self.env.filters.update(when=_when_for, money=money, num=_num)
        self.env.globals.update(relative=lambda e: _relative(e, self.clock()), tel=_tel, mailto=_mailto)
        # status banners after an action, kept here for the session's next page (never read from a
        # URL, where anyone could write "Your session expired. Call 555-0100" into a banner)
        self.flashes: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def flash(self, request: web.Request, kind: str, message: str) -> None:
        """A banner for the next page this session shows: ``sent`` or ``error``."""
        self.flashes[str(request["csrf"])] = (kind, message)
        while len(self.flashes) > 10_000:  # sessions that never came back for theirs
            self.flashes.popitem(last=False)

    def flashed(self, request: web.Request) -> tuple[str | None, str | None]:
        """The banner waiting for this session, once: ``(sent, error)``."""
        kind, message = self.flashes.pop(str(request.get("csrf")), (None, None))
        return (message, None) if kind == "sent" else (None, message)

    # -- the app ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers, self._login])
        r = app.router
        r.add_get("/", self.home)
        r.add_get("/login", self.login_page)
        r.add_post("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_get("/alerts", self.alerts)
        r.add_get("/alerts/{alert_id}", self.alert)
        r.add_post("/alerts/{alert_id}/actions", self.act)
        r.add_get("/escalations", self.escalations)
        r.add_get("/live", self.live)
        r.add_get("/api/v1/openapi.json", self.api_document)
        r.add_get("/api/v1/alerts", self.api_alerts)
        r.add_get("/api/v1/alerts/{alert_id}", self.api_alert)
        r.add_post("/api/v1/alerts/{alert_id}/actions", self.api_act)
        r.add_get("/api/v1/escalations", self.api_escalations)
        r.add_get("/favicon.ico", _favicon)
        r.add_get("/health", self.health)
        r.add_get("/ready", self.readiness)
        r.add_get("/metrics", self.metrics)
        from importlib.resources import files

        r.add_static("/static", str(files("stream.inbox") / "static"))
        return app

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Security headers on every answer, redirects and errors (raised, in aiohttp) included; and
        ``no-store`` on all but the static files, since pages and API answers hold customer data."""
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _secure(exc.headers, request.path)
            raise
        _secure(response.headers, request.path)
        return response

    @web.middleware
    async def _login(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.auth.refresh()  # a user or token removed from the users file loses access now
        path = request.path
        public = ("/login", "/health", "/ready", "/metrics", "/favicon.ico", "/api/v1/openapi.json")
        if path in public or path.startswith("/static/"):
            return await handler(request)
        if path.startswith("/api/"):
            header = request.headers.get("Authorization", "")
            principal = self.auth.check_token(header[7:]) if header.startswith("Bearer ") else None
            if principal is None:
                return _json({"error": "unauthorized", "message": "send Authorization: Bearer <token>"}, 401)
            request[PRINCIPAL] = principal
            return await handler(request)
        proxied = self.auth.from_proxy(request.headers, request.remote)
        if proxied is not None:  # single sign-on in front: a session of its own, for the CSRF token
            request[PRINCIPAL] = proxied
            sid, session = await self._proxy_session(request, proxied)
            request["csrf"] = session.csrf
            request["new_sid"] = sid
        else:
            session = await self.auth.session(request.cookies.get(COOKIE))
            if session is None:
                if request.method != "GET":
                    return web.Response(status=403, text="log in first")
                raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
            request[PRINCIPAL] = session.principal
            request["csrf"] = session.csrf
        if request.method == "POST":
            form = await request.post()
            if not secrets.compare_digest(str(form.get("csrf", "")), str(request["csrf"])):
                return web.Response(
                    status=403, text="the form is stale or did not come from this inbox (CSRF)"
                )
        response = await handler(request)
        if request.get("new_sid"):
            self._cookie(response, request["new_sid"])
        return response

    async def _proxy_session(self, request: web.Request, principal: Principal) -> tuple[str | None, Any]:
        session = await self.auth.session(request.cookies.get(COOKIE))
        if session is not None and session.principal.user == principal.user:
            return None, session
        return await self.auth.open_session(principal)

    def _cookie(self, response: web.StreamResponse, sid: str) -> None:
        response.set_cookie(
            COOKIE, sid, httponly=True, samesite="Strict", secure=self.settings.inbox_secure_cookies, path="/"
        )

    def render(self, request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
        principal = request.get(PRINCIPAL)
        html = self.env.get_template(name).render(
            user=principal, csrf=request.get("csrf"), now=self.clock(), path=request.path, **context
        )
        return web.Response(text=html, content_type="text/html", status=status)

    # -- login ------------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/alerts")

    def _login_form(self, request: web.Request, status: int, target: str, error: str | None) -> web.Response:
        # the login form's CSRF token: the form and a cookie must agree. Kept while it lasts: a second
        # login page (another tab, a browser's favicon request sent to the login) must not void the first
        token = request.cookies.get(LOGIN_COOKIE) or ""
        if not re.fullmatch(r"[A-Za-z0-9_-]{43}", token):
            token = secrets.token_urlsafe(32)
        response = self.render(
            request, "login.html", status=status, next=target, error=error, login_csrf=token
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            httponly=True,
            samesite="Strict",
            secure=self.settings.inbox_secure_cookies,
            path="/login",
        )
        return response

    async def login_page(self, request: web.Request) -> web.Response:
        return self._login_form(request, 200, _safe_next(request.query.get("next")), None)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        user, password = str(form.get("username", ""))[:128], str(form.get("password", ""))
        target = _safe_next(str(form.get("next", "")))
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not secrets.compare_digest(str(form.get("csrf", "")), expected):
            return self._login_form(request, 403, target, "The form expired; please log in again.")
        principal = await self.auth.log_in(user, password, request.remote)
        if principal is None:
            log.info(
                "Inbox: a login failed"
            )  # never the name tried: it may be a password typed in the wrong box
            return self._login_form(request, 401, target, "Wrong user name or password.")
        sid, _ = await self.auth.open_session(principal)
        response = web.HTTPSeeOther(target)
        self._cookie(response, sid)
        log.info("Inbox: a user logged in")
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        await self.auth.close_session(request.cookies.get(COOKIE))
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response

    # -- pages ------------------------------------------------------------------------------

    def _filters(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        return {
            "queue": q.get("queue") or None,
            "team": q.get("team") or None,
            "severity": q.get("severity") or None,
            "status": q.get("status", "waiting") or None,
            "overdue": q.get("overdue") == "1",
        }

    async def alerts(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        filters = self._filters(request)
        if filters["queue"] and not principal.sees(filters["queue"]):
            return self.render(
                request, "error.html", status=403, message=f"You are not in queue {filters['queue']}."
            )
        page = await self.model.page(principal.queues, self.clock(), **filters)
        queues = await self.model.queues(principal.queues)
        template = "alerts_table.html" if request.query.get("fragment") == "table" else "alerts.html"
        return self.render(
            request,
            template,
            page=page,
            filters=filters,
            queues=queues,
            key=self._key,
            query=request.query_string,
        )

    def _key(self, row: dict[str, Any]) -> bool:
        """A key account: its tier is a key tier, or its account value is at least the key value."""
        return (row.get("tier") in self.key_tiers) or (row.get("account_value") or 0) >= self.key_value

    def _why_key(self, row: dict[str, Any]) -> str | None:
        """Why an account is key, in words (None when it is not)."""
        reasons = []
        if row.get("tier") in self.key_tiers:
            reasons.append(f"{row['tier']} tier")
        if (row.get("account_value") or 0) >= self.key_value:
            reasons.append(f"account value of {money(self.key_value)} a year or more")
        return " and ".join(reasons) or None

    def _crm_link(self, customer_id: str | None, profile: dict[str, Any] | None) -> str | None:
        """The customer in the CRM: the profile's own link, else the configured template."""
        own = (profile or {}).get("crm_url")
        if isinstance(own, str) and own.startswith("https://"):
            return own
        template = self.settings.crm_customer_url
        if template and customer_id:
            return template.replace("{customer_id}", quote(customer_id, safe=""))
        return None

    async def alert(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        found = await self.model.alert(request.match_info["alert_id"], self.clock())
        if found is None:
            return self.render(request, "error.html", status=404, message="No such alert (yet).")
        if not principal.sees(found["queue"]):
            return self.render(
                request, "error.html", status=403, message=f"You are not in queue {found['queue']}."
            )
        sent, error = self.flashed(request)
        profile = await self.model.profile(found.get("customer_id"))
        for e in [*found["events"], *found["sent"]]:
            e["actor_name"] = self.auth.display_name(e.get("actor"))
        return self.render(
            request,
            "alert.html",
            a=found,
            doc=found["doc"],
            profile=profile,
            crm=self._crm_link(found.get("customer_id"), profile),
            why_key=self._why_key(found),
            key=self._key(found),
            waiting=found["status"] in WAITING,
            action_id="act_" + secrets.token_hex(16),
            root_causes=self.settings.root_causes,
            currency=self.settings.concession_currency,
            cap=playbook_cap(found["doc"].get("playbook")),
            sent=sent,
            error=error,
        )

    async def act(self, request: web.Request) -> web.StreamResponse:
        principal = request[PRINCIPAL]
        alert_id = request.match_info["alert_id"]
        form = await request.post()
        fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        cause = fields.get("root_cause", "")
        if cause == "other":
            cause = fields.get("root_cause_other", "").strip()
        fields["root_cause"] = cause
        concession: Any = None
        amount = fields.get("concession_amount", "").strip()
        if fields.get("type") == "resolved" and (amount or fields.get("concession_kind")):
            try:
                value: Any = float(amount.replace(",", "")) if amount else None
            except ValueError:
                value = amount  # the contract model names what is wrong with it
            concession = {
                "amount": value,
                "currency": fields.get("concession_currency", "").strip().upper(),
                "kind": fields.get("concession_kind") or "credit",
            }
            if value is None and concession["kind"] == "none":
                concession["amount"] = 0
        status, body = await self._act(principal, alert_id, fields, concession)
        where = f"/alerts/{alert_id}"
        if status == 202:
            self.flash(request, "sent", body["action"]["type"])
            raise web.HTTPSeeOther(where)
        if status in (403, 404):
            return self.render(request, "error.html", status=status, message=body["message"])
        self.flash(request, "error", body["message"])
        raise web.HTTPSeeOther(where)

    async def _act(
        self, principal: Principal, alert_id: str, fields: dict[str, str], concession: Any = None
    ) -> tuple[int, dict[str, Any]]:
        """Validate an action and produce it; the status and body the API answers.

        A concession (on resolving only) is checked against the alert's playbook cap: above it,
        or in another currency than the caps', it needs a note saying why (the worker flags it)."""
        found = await self.model.alert(alert_id, self.clock())
        if found is None:
            return 404, {"error": "not_found", "message": "No such alert (yet)."}
        if not principal.sees(found["queue"]):
            return 403, {"error": "forbidden", "message": f"You are not in queue {found['queue']}."}
        kind = fields.get("type", "")
        if kind not in ACTIONS:
            return 400, {"error": "invalid", "message": f"type must be one of {', '.join(ACTIONS)}"}
        action_id = fields.get("action_id") or "act_" + secrets.token_hex(16)
        if not _ACTION_ID.match(action_id):
            return 400, {"error": "invalid", "message": "action_id must be act_ and 32 hex digits"}
        note = fields.get("note", "").strip() or None
        if kind == "note" and not note:
            return 400, {"error": "invalid", "message": "a note needs text"}
        doc: dict[str, Any] = {
            "action_id": action_id,
            "alert_id": alert_id,
            # a note travels as an acknowledgement (the contract's action types): it changes no
            # status once the alert is acknowledged, and writing one means it was seen
            "type": "acknowledged" if kind == "note" else kind,
            "actor": principal.user,
            "at": format_timestamp(datetime.fromtimestamp(self.clock(), UTC)),
        }
        if note:
            doc["note"] = note
        if kind == "resolved":
            cause = fields.get("root_cause", "").strip()
            if not cause:
                return 400, {"error": "invalid", "message": "resolving needs a root cause"}
            doc["root_cause"] = cause
        if concession is not None:
            if kind != "resolved":
                return 400, {"error": "invalid", "message": "a concession is recorded when resolving"}
            doc["concession"] = concession
        try:
            action = FollowupAction.model_validate(doc)  # the worker's own contract model
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(x) for x in first["loc"]) or "action"
            return 400, {"error": "invalid", "message": f"{where}: {first['msg']}"}
        if action.concession is not None:
            doc["concession"] = action.concession.model_dump(mode="json")
            problem = self._over_cap(found, doc["concession"])
            if problem and not note:
                return 400, {"error": "needs_note", "message": problem + ": add a note saying why"}
        try:
            await self.send_action(doc)
        except Exception as exc:
            log.warning("Inbox: an action could not be produced (%s)", type(exc).__name__)
            return 503, {"error": "unavailable", "message": "Kafka did not take the action; try again."}
        await self.model.record_sent(doc)
        return 202, {"status": "sent", "action": doc}

    def _over_cap(self, found: dict[str, Any], concession: dict[str, Any]) -> str | None:
        """Why a concession needs a note (above the playbook's cap, or not comparable), or None."""
        currency = self.settings.concession_currency
        if concession["kind"] == "none" or not concession["amount"]:
            return None
        if concession["currency"] != currency:
            theirs = concession["currency"]
            return f"the playbook's caps are in {currency}; a concession in {theirs} cannot be checked"
        cap = playbook_cap((found.get("doc") or {}).get("playbook"))
        flagged = over_cap(concession, cap, currency)
        if flagged and cap is not None:
            return f"{concession['amount']:g} {currency} is above this alert's cap of {cap:g} {currency}"
        return None

    async def escalations(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        queue = request.query.get("queue") or None
        if queue and not principal.sees(queue):
            return self.render(request, "error.html", status=403, message=f"You are not in queue {queue}.")
        rows = await self.model.escalation_page(principal.queues, queue)
        queues = await self.model.queues(principal.queues)
        return self.render(request, "escalations.html", rows=rows, queue=queue, queues=queues, key=self._key)

    async def live(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``changed`` whenever the read model moves (the page reloads its table)."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        last = -1
        deadline = time.monotonic() + 300  # the browser reconnects; a stale tab does not hold a task for ever
        try:
            while time.monotonic() < deadline:
                version = await self.model.version()
                if version != last:
                    await response.write(f"event: changed\ndata: {version}\n\n".encode())
                    last = version
                else:
                    await response.write(b": keep-alive\n\n")
                await asyncio.sleep(2)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the page was closed or left
        return response

    # -- the JSON API -----------------------------------------------------------------------

    async def api_document(self, request: web.Request) -> web.Response:
        """The OpenAPI 3.1 document of this API (no data in it: no login)."""
        return _json(openapi())

    async def api_alerts(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        for name, allowed in QUERY_VALUES.items():
            if name in request.query and request.query[name] not in allowed:
                shown = ", ".join(repr(v) for v in allowed)
                return _json({"error": "invalid", "message": f"{name} must be one of {shown}"}, 400)
        filters = self._filters(request)
        if filters["queue"] and not principal.sees(filters["queue"]):
            return _json({"error": "forbidden", "message": f"not in queue {filters['queue']}"}, 403)
        page = await self.model.page(principal.queues, self.clock(), **filters)
        return _json(
            {
                "total": page.total,
                "overdue": page.overdue,
                "by_status": page.by_status,
                "alerts": [_api_row(r) for r in page.rows],
            }
        )

    async def api_alert(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        found = await self.model.alert(request.match_info["alert_id"], self.clock())
        if found is None:
            return _json({"error": "not_found"}, 404)
        if not principal.sees(found["queue"]):
            return _json({"error": "forbidden", "message": f"not in queue {found['queue']}"}, 403)
        body = _api_row(found)
        body["history"] = [orjson.loads(e["doc"]) for e in found["events"] if e.get("doc")]
        body["sent"] = found["sent"]
        profile = await self.model.profile(found.get("customer_id"))
        if profile is not None:  # the newest held (the alert's own copy is not kept: erasure erases it)
            at = datetime.fromtimestamp(profile["updated_at"], UTC).replace(microsecond=0)
            profile["updated_at"] = format_timestamp(at)
        body["profile"] = profile
        return _json(body)

    async def api_act(self, request: web.Request) -> web.Response:
        try:
            doc = await request.json(loads=orjson.loads)
        except (orjson.JSONDecodeError, ValueError):
            return _json({"error": "invalid", "message": "the body must be a JSON object"}, 400)
        if not isinstance(doc, dict):
            return _json({"error": "invalid", "message": "the body must be a JSON object"}, 400)
        try:
            asked = ActionRequest.model_validate(doc)  # the model the OpenAPI document is made from
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(x) for x in first["loc"]) or "body"
            return _json({"error": "invalid", "message": f"{where}: {first['msg']}"}, 400)
        fields = {k: v for k, v in asked.model_dump(exclude={"concession"}).items() if isinstance(v, str)}
        concession = asked.concession.model_dump(mode="json") if asked.concession is not None else None
        status, body = await self._act(request[PRINCIPAL], request.match_info["alert_id"], fields, concession)
        return _json(body, status)

    async def api_escalations(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        queue = request.query.get("queue") or None
        if queue and not principal.sees(queue):
            return _json({"error": "forbidden", "message": f"not in queue {queue}"}, 403)
        rows = await self.model.escalation_page(principal.queues, queue)
        return _json({"escalations": [orjson.loads(r["doc"]) for r in rows if r.get("doc")]})

    # -- operations -------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readiness(self, request: web.Request) -> web.Response:
        ready = self.ready()
        return _json({"ready": ready}, 200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0]
        )


async def _favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)


QUERY_VALUES = {p["name"]: p["schema"]["enum"] for p in QUERY if "enum" in p["schema"]}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _api_row(row: dict[str, Any]) -> dict[str, Any]:
    doc = dict(row.get("doc") or {})
    doc["status"] = row["status"]
    doc["overdue"] = row["overdue"]
    doc["follow_up_due_at"] = (
        format_timestamp(datetime.fromtimestamp(row["due_at"], UTC)) if row["due_at"] else None
    )
    doc["root_cause"] = row.get("root_cause")
    doc["overdue_notices"] = row.get("notices", 0)
    return doc


def _secure(headers: Any, path: str) -> None:
    headers.setdefault(
        "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if not path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")


_UNSAFE_NEXT = re.compile(r"[\x00-\x20\x7f\\]")  # controls, spaces, backslash: browsers drop or turn them


def _safe_next(target: str | None) -> str:
    """Only a path on this site: ``next`` must never send a user elsewhere after logging in.

    Checked as a browser will read it: browsers remove tabs and line breaks from a URL and read a
    backslash as a slash, so ``/\t/evil.example`` is ``//evil.example``: such characters are refused
    outright, then the path must start with one ``/`` and name no scheme or host.
    """
    if not target or _UNSAFE_NEXT.search(target) or len(target) > 2000:
        return "/alerts"
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc:
        return "/alerts"
    return target
