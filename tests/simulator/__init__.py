"""A Telegram Bot API simulator for tests and benchmarks.

Point the real aiogram ``Bot`` at it::

    async with BotAPISimulator() as sim:
        session = AiohttpSession(api=TelegramAPIServer.from_base(sim.base_url))
        bot = Bot("123:abc", session=session)
        user = sim.user(111, first_name="Li")
        await user.send("/start")
"""

from .server import BotAPISimulator
from .state import CallbackAnswer, SentRecord, SimMessage, SimTopic
from .users import SimGroup, SimUser

__all__ = [
    "BotAPISimulator",
    "CallbackAnswer",
    "SentRecord",
    "SimGroup",
    "SimMessage",
    "SimTopic",
    "SimUser",
]
