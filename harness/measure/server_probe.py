"""What an OpenAI-compatible server says of itself before and after load: whether it answers
``GET /v1/models``, and the model names it lists there (OpenAI's ``data[].id``)."""
from __future__ import annotations

import asyncio


async def list_models(url: str, timeout_s: float) -> tuple[list[str], str | None]:
    """The model names ``GET /v1/models`` lists, and None; or no names and why it did not answer."""
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.get(url.rstrip("/") + "/v1/models") as resp:
                if resp.status != 200:
                    return [], f"GET /v1/models answered HTTP {resp.status}"
                try:
                    body = await resp.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    return [], None  # it answers; what it serves is not said in a form read here
                data = body.get("data") if isinstance(body, dict) else None
                return [str(m["id"]) for m in data or [] if isinstance(m, dict) and m.get("id")], None
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return [], f"{type(e).__name__}: {e}"


def served_models(url: str, timeout_s: float = 5.0) -> tuple[list[str], str | None]:
    """What ``url`` serves by ``GET /v1/models`` (OpenAI's list: ``data[].id``), and None; or [] and why it
    does not answer."""
    return asyncio.run(list_models(url, timeout_s))


def unreachable(url: str, timeout_s: float = 5.0) -> str | None:
    """None when ``url`` answers ``GET /v1/models`` with 200, else why not."""
    return served_models(url, timeout_s)[1]
