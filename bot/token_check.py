"""The token check, made before the bot is imported: a wrong ``BOT_TOKEN`` answers at once.

Importing aiogram and the rest of the bot takes one to two seconds of CPU on this project's
reference machine. ``carebot run`` asks the Bot API's ``getMe`` first, so a mistyped token or an
unreachable Bot API is one clear line within a second of launch rather than after the imports,
the database check and the migrations. Written with the standard library's HTTP client (imported
in milliseconds) because it has to run before aiogram, the client every later call goes through;
like aiogram's session it ignores proxy variables from the environment.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

TIMEOUT_SECONDS = 10.0


class TokenError(Exception):
    """``carebot run`` cannot go on; the message says why in one line."""


@dataclass(frozen=True)
class BotIdentity:
    id: int
    username: str


def check_token(api_url: str, token: str, timeout: float = TIMEOUT_SECONDS) -> BotIdentity:
    """The bot behind ``token``, asked of the Bot API at ``api_url``; ``TokenError`` otherwise."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{api_url.rstrip('/')}/bot{token}/getMe", method="POST")
    try:
        with opener.open(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise TokenError(
                f"the Bot API at {api_url} refused BOT_TOKEN (401 Unauthorized): "
                "check the token @BotFather gave you"
            ) from None
        raise TokenError(f"the Bot API at {api_url} answered: {_description(exc)}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TokenError(f"cannot reach the Bot API at {api_url}: {reason}") from None
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, dict) or "id" not in result:
        raise TokenError(f"the Bot API at {api_url} answered getMe with no bot")
    return BotIdentity(int(result["id"]), str(result.get("username") or ""))


def _description(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
    except ValueError:
        return f"HTTP {error.code}"
    if isinstance(body, dict) and body.get("description"):
        return str(body["description"])
    return f"HTTP {error.code}"
