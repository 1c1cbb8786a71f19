"""The Prometheus metrics every part of carebot reports to (prometheus-client).

Metric objects live in prometheus-client's process-wide registry, as the library intends: one
set per process, whichever part (dispatcher, delivery worker, scheduler) touches them. The
HTTP side (``/metrics``) is served by the bot; this module only names and describes them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UPDATES = Counter(
    "carebot_updates_total",
    "Telegram updates handled, by outcome (ok, error, duplicate, retry).",
    ["outcome"],
)
UPDATE_SECONDS = Histogram(
    "carebot_update_seconds",
    "Time from an update's arrival to the end of its handling.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DUPLICATE_UPDATES = Counter(
    "carebot_duplicate_updates_total", "Re-sent updates skipped because they were handled before."
)
HANDLER_ERRORS = Counter(
    "carebot_handler_errors_total", "Updates whose handler raised, by exception type.", ["error"]
)
OUTBOX_DEPTH = Gauge(
    "carebot_outbox_messages",
    "Outbox rows by state and kind (read from the database at scrape time).",
    ["state", "kind"],
)
SENDS = Counter(
    "carebot_sends_total",
    "Bot API send attempts by the delivery worker, by result (sent, 429, 403, 400, 5xx, ...).",
    ["result"],
)
SCHEDULER_RUNS = Counter(
    "carebot_scheduler_runs_total", "Scheduled job runs by job and outcome.", ["job", "outcome"]
)
SCHEDULER_SECONDS = Histogram(
    "carebot_scheduler_run_seconds",
    "Duration of scheduled job runs.",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0),
)
LEADER = Gauge(
    "carebot_scheduler_leader",
    "1 while this replica leads the schedule, else 0.",
    ["holder"],
)
