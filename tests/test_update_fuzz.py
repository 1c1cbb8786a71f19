"""Property: whatever Telegram delivers, nothing escapes unhandled and the bot keeps answering.

Hypothesis generates thousands of updates — messages of every content type, commands with odd
arguments, callback presses with random data on the bot's own messages, edited messages, member
status changes, channel posts, kinds of update this aiogram does not know, huge texts, NULs and
odd unicode — and feeds them to the real dispatcher the app builds, whose Bot talks to the
simulator (so every Bot API call is checked as Telegram would). No update may end in the error
handler, none may raise out of the dispatcher, and /start still gets its answer afterwards.
"""

from __future__ import annotations

import logging
import warnings
from itertools import count
from typing import Any

import pytest
from aiogram.types import Update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunningBot
from tests.journey_helpers import wait_button, without_throttling
from tests.staff_helpers import OWNER_ID

SHOPPERS = (6001, 6002, 6003)
PEOPLE = (*SHOPPERS, OWNER_ID)
GROUP_ID = -1009876543210
# The handlers' callback prefixes, and a few that belong to nobody.
PREFIXES = (
    "bc", "ex", "fb", "fbk", "fd", "fl", "ib", "jd", "jr", "js", "jz", "mp", "of", "sr", "tk",
    "sv", "reg", "st", "m360", "",
)  # fmt: skip
COMMANDS = (
    "/start", "/help", "/menu", "/card", "/offers", "/points", "/feedback", "/invite",
    "/settings", "/mydata", "/delete_me", "/stop", "/unsubscribe", "/cancel", "/staff",
    "/member", "/purchase", "/redeem", "/birthday", "/broadcast", "/offer", "/inbox", "/stats",
    "/export", "/audit", "/followups",
)  # fmt: skip
EXAMPLES = 60
UPDATES_PER_EXAMPLE = 30

odd_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
    st.sampled_from(
        ["\x00", "a\x00b", "\u200b\u200e", "🧑‍🤝‍🧑" * 50, "<b>", "{{ name }}", "%\x00%"]
    ),
    st.builds(
        lambda ch, n: ch * n, st.sampled_from(["x", "中", "😀", "\x00"]), st.integers(0, 9000)
    ),
)
command_text = st.builds(
    lambda command, args: f"{command} {args}".rstrip(),
    st.sampled_from(COMMANDS),
    st.one_of(st.just(""), odd_text, st.from_regex(r"[A-Z0-9]{8} [0-9\-]{4,12}", fullmatch=True)),
)
callback_data = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda prefix, parts: ":".join([prefix, *parts]),
        st.sampled_from(PREFIXES),
        st.lists(
            st.one_of(st.integers(-(2**63), 2**63).map(str), st.text(max_size=12)), max_size=4
        ),
    ),
)


@st.composite
def content(draw: st.DrawFn, files: dict[str, Any], user_id: int) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ["text", "text", "command", "command", "photo", "sticker", "contact", "location",
             "document", "voice", "dice", "venue", "new_members", "empty"]
        )
    )  # fmt: skip
    if kind == "text":
        return {"text": draw(odd_text)}
    if kind == "command":
        return {"text": draw(command_text)}
    if kind == "photo":
        return {
            "photo": files["photo"],
            "caption": draw(st.none() | odd_text.map(lambda t: t[:1024])),
        }
    if kind == "sticker":
        return {"sticker": {**files["sticker"], "width": 512, "height": 512, "type": "regular",
                            "is_animated": False, "is_video": False}}  # fmt: skip
    if kind == "contact":
        return {
            "contact": {
                "phone_number": draw(st.one_of(st.from_regex(r"\+?[0-9 ]{0,20}"), odd_text)),
                "first_name": draw(st.text(min_size=1, max_size=20)),
                "user_id": draw(st.sampled_from([user_id, user_id + 1])),
            }
        }
    if kind == "location":
        return {
            "location": {
                "latitude": draw(st.floats(-90, 90, allow_nan=False)),
                "longitude": draw(st.floats(-180, 180, allow_nan=False)),
            }
        }
    if kind == "document":
        return {"document": files["document"], "caption": draw(st.none() | st.text(max_size=50))}
    if kind == "voice":
        return {"voice": {**files["voice"], "duration": draw(st.integers(0, 10**6))}}
    if kind == "dice":
        return {"dice": {"emoji": "🎲", "value": draw(st.integers(1, 6))}}
    if kind == "venue":
        return {
            "venue": {
                "location": {"latitude": 31.2, "longitude": 121.4},
                "title": draw(odd_text),
                "address": draw(odd_text),
            }
        }
    if kind == "new_members":
        return {"new_chat_members": [{"id": user_id, "is_bot": False, "first_name": "X"}]}
    return {}


class Fuzzer:
    """Builds update dicts the way Telegram shapes them, around a generated part."""

    def __init__(self, app: RunningBot) -> None:
        self.app = app
        self.ids = count(10_000_000)
        self.message_ids = count(5_000_000)
        sim = app.sim
        photo = sim.register_photo(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
        document = sim.register_document(b"a,b\n1,2\n", "list.csv", "text/csv")
        sticker_id, sticker_unique = sim.register_file(b"sticker", "sticker.webp")
        voice_id, voice_unique = sim.register_file(b"voice", "voice.ogg")
        self.files = {
            "photo": photo,
            "document": document,
            "sticker": {"file_id": sticker_id, "file_unique_id": sticker_unique},
            "voice": {"file_id": voice_id, "file_unique_id": voice_unique},
        }
        for user_id in PEOPLE:
            app.user(user_id, first_name=f"P{user_id}", language_code="en", started=True)
        sim.group(GROUP_ID, title="Shop fans")

    def person(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": f"P{user_id}", "language_code": "en"}

    def chat(self, user_id: int, in_group: bool) -> dict[str, Any]:
        if in_group:
            return {"id": GROUP_ID, "type": "supergroup", "title": "Shop fans"}
        return {"id": user_id, "type": "private", "first_name": f"P{user_id}"}

    def message(self, user_id: int, in_group: bool, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "message_id": next(self.message_ids),
            "date": 1_772_420_400,
            "chat": self.chat(user_id, in_group),
            "from": self.person(user_id),
            **body,
        }

    def bot_messages(self, user_id: int) -> list[dict[str, Any]]:
        return [m.payload for m in self.app.sim.chat_messages(user_id) if m.from_bot][-5:]

    def update(self, data: st.DataObject) -> dict[str, Any]:
        # Every part is drawn every time, whatever is used: Hypothesis needs the draws not to
        # depend on the simulator's state (which messages the bot has shown so far).
        user_id = data.draw(st.sampled_from(PEOPLE))
        kind = data.draw(
            st.sampled_from(
                ["message"] * 6 + ["callback"] * 3 + ["edited", "member", "channel", "unknown"]
            )
        )
        in_group = data.draw(st.booleans()) and user_id != OWNER_ID
        body = data.draw(content(self.files, user_id))
        pressed = data.draw(st.integers(0, 4))
        press_data = data.draw(callback_data)
        status = data.draw(st.sampled_from(["kicked", "member"]))
        post = data.draw(odd_text)
        unknown = data.draw(st.sampled_from(["zz_future_update", "guest_query_x"]))

        update: dict[str, Any] = {"update_id": next(self.ids)}
        shown = self.bot_messages(user_id)
        if kind == "callback" and shown:
            update["callback_query"] = {
                # An id the simulator issued, as Telegram does: answering it is valid.
                "id": self.app.sim.new_callback(self.app.user(user_id)),
                "from": self.person(user_id),
                "chat_instance": "ci",
                "message": shown[pressed % len(shown)],
                "data": press_data,
            }
        elif kind in ("message", "callback"):
            update["message"] = self.message(user_id, in_group, body)
        elif kind == "edited":
            update["edited_message"] = self.message(user_id, False, body) | {
                "edit_date": 1_772_420_500
            }
        elif kind == "member":
            bot = self.person(0) | {"is_bot": True}
            update["my_chat_member"] = {
                "chat": self.chat(user_id, False),
                "from": self.person(user_id),
                "date": 1_772_420_400,
                "old_chat_member": {"status": "member", "user": bot},
                "new_chat_member": {"status": status, "user": bot}
                | ({"until_date": 0} if status == "kicked" else {}),
            }
        elif kind == "channel":
            update["channel_post"] = {
                "message_id": next(self.message_ids),
                "date": 1_772_420_400,
                "chat": {"id": -100555, "type": "channel", "title": "News"},
                "text": post or "-",
            }
        else:
            update[unknown] = {"anything": post}
        return update


class Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def fuzzer(app: RunningBot) -> Fuzzer:
    return Fuzzer(without_throttling(app))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_update_escapes_and_the_bot_still_answers(
    fuzzer: Fuzzer, data: st.DataObject
) -> None:
    app = fuzzer.app
    failures = Failures()
    logging.getLogger().addHandler(failures)
    try:
        for _ in range(UPDATES_PER_EXAMPLE):
            raw = fuzzer.update(data)
            update = Update.model_validate(raw)
            with warnings.catch_warnings():
                # aiogram warns about a kind of update it does not know, then skips it.
                warnings.filterwarnings("ignore", "Detected unknown update type", RuntimeWarning)
                await app.dp.feed_update(app.bot, update)
            assert not failures.records, (raw, [r.getMessage() for r in failures.records])
    finally:
        logging.getLogger().removeHandler(failures)


async def test_after_the_storm_a_newcomer_still_gets_start(fuzzer: Fuzzer) -> None:
    """The same storm, smaller, then a real /start through polling: the bot is still there."""
    app = fuzzer.app

    @settings(max_examples=10, deadline=None)
    @given(data=st.data())
    def storm(data: st.DataObject) -> None:
        updates.append(Update.model_validate(fuzzer.update(data)))

    updates: list[Update] = []
    storm()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Detected unknown update type", RuntimeWarning)
        for update in updates:
            await app.dp.feed_update(app.bot, update)
    newcomer = app.user(6999, first_name="New", language_code="en")
    await newcomer.send("/start")
    await wait_button(newcomer, "English")
