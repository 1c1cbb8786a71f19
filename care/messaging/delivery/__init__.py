"""The delivery worker: drains the outbox into Telegram within its limits, recording everything.

A pass claims due rows in small batches (``queued`` → ``sending`` with a lease), sends them
concurrently through the rate limiter, and writes the results back in batched UPDATEs:

* sent → ``sent`` with Telegram's message id;
* 403 (the member blocked the bot) → ``skipped`` "unreachable", the member marked unreachable,
  never retried;
* 400 (chat not found, a text Telegram refuses) → ``failed``, never retried;
* 429 → back to ``queued`` after ``retry_after``, and the whole flow pauses that long;
* 5xx, or a network failure before the request left (no connection could be opened) →
  ``queued`` again with exponential backoff, ``failed`` after ``config.max_attempts`` attempts.

At claim time each row is checked again: a member who blocked the bot, deleted their data or
(for marketing) withdrew consent since the message was queued gets nothing.

Crash semantics: at most once. A row in ``sending`` whose lease expired belongs to a worker that
died between sending and recording; Telegram cannot be asked whether it went out, so it is
marked ``failed`` "interrupted" and never resent. The loss is bounded by the rows a worker holds
claimed: at most ``2 × batch_size`` (about one second of sending at the configured rate). A
request whose answer was lost after it reached Telegram (a timeout or a dropped connection) is
not retried for the same reason. A clean stop (``run``'s stop event) loses nothing: messages
not yet sent go back to ``queued``.

The package: ``worker`` (the loop: claiming, recording), ``sending`` (one Bot API call and what
its answer means for the row), ``results`` (the row and result types, sizing, backoff) and
``__main__`` (``python -m care.messaging.delivery``, an extra worker reading the bot's settings).
"""

from care.messaging.delivery.results import (
    INTERRUPTED,
    DeliveryStats,
    backoff,
    default_batch_size,
    default_concurrency,
    in_flight_bound,
    reply_markup_from,
)
from care.messaging.delivery.worker import DeliveryWorker
from care.messaging.outbox import campaign_counts

__all__ = [
    "INTERRUPTED",
    "DeliveryStats",
    "DeliveryWorker",
    "backoff",
    "campaign_counts",
    "default_batch_size",
    "default_concurrency",
    "in_flight_bound",
    "reply_markup_from",
]
