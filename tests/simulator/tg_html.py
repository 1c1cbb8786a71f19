"""A strict parser for Telegram's HTML parse mode.

It validates markup the way the Bot API does (known tags, balanced nesting, escaped
``& < >`` outside tags) and returns the visible text a user would see.
"""

from __future__ import annotations

import re

ALLOWED_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});")
_ATTR_RE = re.compile(r"""\s*([a-zA-Z_-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_TAG_NAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")


class HTMLParseError(ValueError):
    """Raised with a Telegram-like description (without the "Bad Request" prefix)."""


def _offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _unescape_entity(text: str, index: int) -> tuple[str, int]:
    match = _ENTITY_RE.match(text, index)
    if match is None:
        raise HTMLParseError(
            f"can't parse entities: Character entity expected at byte offset "
            f"{_offset(text, index)}; use &amp; to write a literal '&'"
        )
    body = match.group(1)
    if body.startswith("#"):
        code = int(body[2:], 16) if body[1] in "xX" else int(body[1:])
        if code > 0x10FFFF:
            raise HTMLParseError(
                f"can't parse entities: Invalid character entity at byte offset "
                f"{_offset(text, index)}"
            )
        return chr(code), match.end()
    value = _NAMED_ENTITIES.get(body.lower())
    if value is None:
        raise HTMLParseError(
            f'can\'t parse entities: Unsupported HTML entity "&{body};" at byte offset '
            f"{_offset(text, index)}"
        )
    return value, match.end()


def _check_attributes(name: str, attrs: str, text: str, index: int) -> None:
    parsed: dict[str, str] = {}
    pos = 0
    while pos < len(attrs):
        if attrs[pos:].strip() in ("", "/"):
            break
        match = _ATTR_RE.match(attrs, pos)
        if match is None:
            raise HTMLParseError(
                f"can't parse entities: Expected equal sign in declaration of an attribute "
                f'of the tag "{name}" at byte offset {_offset(text, index)}'
            )
        value = next(g for g in match.groups()[1:] if g is not None)
        parsed[match.group(1).lower()] = value
        pos = match.end()
    if name == "a" and "href" not in parsed:
        # Telegram tolerates <a> without href (it becomes plain text), keep parity.
        return
    if name == "span" and parsed.get("class") != "tg-spoiler":
        raise HTMLParseError(
            'can\'t parse entities: Tag "span" must have class "tg-spoiler" at byte offset '
            f"{_offset(text, index)}"
        )
    if name == "tg-emoji" and "emoji-id" not in parsed:
        raise HTMLParseError(
            "can't parse entities: Custom emoji entity must contain a tg://emoji URL "
            f"at byte offset {_offset(text, index)}"
        )


def parse_html(text: str) -> str:
    """Validate Telegram HTML and return the visible (tags stripped, unescaped) text."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    i = 0
    n = len(text)
    while i < n:
        # Fast path: copy a run of plain characters.
        j = i
        while j < n and text[j] not in "<>&":
            j += 1
        if j > i:
            out.append(text[i:j])
            i = j
            if i >= n:
                break
        ch = text[i]
        if ch == "&":
            value, i = _unescape_entity(text, i)
            out.append(value)
            continue
        if ch == ">":
            raise HTMLParseError(
                f"can't parse entities: Unexpected end tag at byte offset {_offset(text, i)}; "
                "use &gt; to write a literal '>'"
            )
        end = text.find(">", i)
        if end == -1:
            raise HTMLParseError(
                f"can't parse entities: Unclosed start tag at byte offset {_offset(text, i)}"
            )
        inner = text[i + 1 : end]
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise HTMLParseError(
                    f"can't parse entities: Unexpected end tag at byte offset {_offset(text, i)}"
                )
            open_name, _ = stack.pop()
            if name != open_name:
                raise HTMLParseError(
                    f"can't parse entities: Unmatched end tag at byte offset "
                    f'{_offset(text, i)}, expected "</{open_name}>", found "</{name}>"'
                )
        else:
            match = _TAG_NAME_RE.match(inner)
            if match is None:
                raise HTMLParseError(
                    f"can't parse entities: Unsupported start tag at byte offset "
                    f"{_offset(text, i)}; use &lt; to write a literal '<'"
                )
            name = match.group(0).lower()
            if name not in ALLOWED_TAGS:
                raise HTMLParseError(
                    f'can\'t parse entities: Unsupported start tag "{name}" at byte offset '
                    f"{_offset(text, i)}"
                )
            _check_attributes(name, inner[match.end() :], text, i)
            stack.append((name, i))
        i = end + 1
    if stack:
        name, pos = stack[-1]
        raise HTMLParseError(
            f"can't parse entities: Can't find end tag corresponding to start tag \"{name}\" "
            f"at byte offset {_offset(text, pos)}"
        )
    return "".join(out)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
