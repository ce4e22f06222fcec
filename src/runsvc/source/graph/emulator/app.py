"""The emulator's HTTP surface (Starlette): the Entra login endpoints, Graph's
Intune routes and JSON $batch, and /_emulator/ routes to set it up and read
its counts from another process."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runsvc.source.graph.emulator.state import (
    MAX_BATCH,
    READ_WRITE,
    EmulatorState,
    Reply,
    Token,
    graph_error,
)


def _respond(reply: Reply) -> Response:
    if reply.body is None:
        return Response(status_code=reply.status, headers=reply.headers)
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _json_body(request: Request) -> tuple[Any, Reply | None]:
    raw = await request.body()
    if not raw:
        return None, None
    try:
        return json.loads(raw), None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, graph_error(400, "BadRequest", "The request body is not valid JSON.")


def create_app(state: EmulatorState) -> Starlette:
    async def latency() -> None:
        if state.settings.latency > 0:
            await asyncio.sleep(state.settings.latency)

    async def openid_configuration(request: Request) -> Response:
        await latency()
        return _respond(
            state.openid_configuration(_base_url(request), request.path_params["tenant"])
        )

    async def token(request: Request) -> Response:
        await latency()
        # application/x-www-form-urlencoded, as OAuth 2.0 token requests are
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        return _respond(state.issue_token(_base_url(request), request.path_params["tenant"], form))

    async def admitted(request: Request) -> tuple[Token, Any] | Response:
        """After Graph's latency: the caller's token and the JSON body, or
        the refusal (no valid token, a body that is not JSON)."""
        await latency()
        who = state.authenticate(
            request.headers.get("authorization"), agent=request.headers.get("user-agent", "")
        )
        if isinstance(who, Reply):
            return _respond(who)
        body, problem = await _json_body(request)
        if problem:
            return _respond(problem)
        return who, body

    async def graph(request: Request) -> Response:
        admission = await admitted(request)
        if isinstance(admission, Response):
            return admission
        who, body = admission
        state.count_http_request()
        url = request.path_params["path"]
        if request.url.query:
            url = f"{url}?{request.url.query}"
        reply = state.handle(
            who,
            request.method,
            request.path_params["version"],
            url,
            body,
            base_url=_base_url(request),
            agent=request.headers.get("user-agent", ""),
        )
        return _respond(reply)

    async def batch(request: Request) -> Response:
        admission = await admitted(request)
        if isinstance(admission, Response):
            return admission
        who, body = admission
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return _respond(graph_error(400, "BadRequest", "Invalid batch payload: requests."))
        if len(requests) > MAX_BATCH:
            return _respond(
                graph_error(400, "BadRequest", f"Batch request exceeds the max of {MAX_BATCH}.")
            )
        ids = [r.get("id") if isinstance(r, dict) else None for r in requests]
        if any(not isinstance(i, str) or not i for i in ids) or len(
            {i.lower() for i in ids}
        ) != len(ids):
            return _respond(graph_error(400, "BadRequest", "Batch request ids must be unique."))
        state.count_http_request(batch=True)
        version = request.path_params["version"]
        responses = []
        for sub in requests:
            method, url = str(sub.get("method", "")).upper(), sub.get("url")
            headers = {k.lower(): v for k, v in (sub.get("headers") or {}).items()}
            if not method or not isinstance(url, str) or url.startswith("http"):
                reply = graph_error(
                    400, "BadRequest", "Each request needs a method and a relative url."
                )
            elif "body" in sub and "content-type" not in headers:
                reply = graph_error(
                    400, "BadRequest", "Content-Type header is required with a body."
                )
            else:
                reply = state.handle(
                    who,
                    method,
                    version,
                    url.lstrip("/"),
                    sub.get("body"),
                    base_url=_base_url(request),
                    agent=request.headers.get("user-agent", ""),
                )
            entry: dict[str, Any] = {
                "id": sub["id"],
                "status": reply.status,
                "headers": reply.headers,
            }
            if reply.body is not None:
                entry["headers"] = {**reply.headers, "Content-Type": "application/json"}
                entry["body"] = reply.body
            responses.append(entry)
        # Documented: responses may come in another order than the requests.
        state.shuffle(responses)
        return JSONResponse({"responses": responses})

    # --- setup and inspection from another process -----------------------

    async def admin_state(request: Request) -> Response:
        return JSONResponse(state.summary())

    async def admin_tenants(request: Request) -> Response:
        """{"tenantId", "consent": [client ids], "objects": {collection: [...]}}"""
        document = await request.json()
        tenant_id = document["tenantId"]
        state.add_tenant(
            tenant_id,
            consent=document.get("consent", []),
            permissions=document.get("permissions", [READ_WRITE]),
        )
        created = {
            collection: [state.put_object(tenant_id, collection, obj)["id"] for obj in objects]
            for collection, objects in document.get("objects", {}).items()
        }
        return JSONResponse({"tenantId": tenant_id, "created": created}, status_code=201)

    async def admin_objects(request: Request) -> Response:
        tenant_id, collection = request.path_params["tenant"], request.path_params["collection"]
        return JSONResponse(state.objects(tenant_id, collection))

    async def admin_configure(request: Request) -> Response:
        state.configure(**(await request.json()))
        return Response(status_code=204)

    async def admin_throttle(request: Request) -> Response:
        document = await request.json()
        state.throttle(document["tenantId"], float(document["seconds"]))
        return Response(status_code=204)

    async def admin_expire_tokens(request: Request) -> Response:
        return JSONResponse({"expired": state.expire_tokens()})

    routes = [
        Route("/_emulator/state", admin_state),
        Route("/_emulator/tenants", admin_tenants, methods=["POST"]),
        Route("/_emulator/tenants/{tenant}/{collection}", admin_objects),
        Route("/_emulator/configure", admin_configure, methods=["POST"]),
        Route("/_emulator/throttle", admin_throttle, methods=["POST"]),
        Route("/_emulator/expire-tokens", admin_expire_tokens, methods=["POST"]),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/{version:str}/$batch", batch, methods=["POST"]),
        Route("/{version:str}/{path:path}", graph, methods=["GET", "POST", "PATCH", "DELETE"]),
    ]
    return Starlette(routes=routes)
