"""miniray: report a Python job's lifecycle to a miniray collector.

Decorate a job function; every call becomes a task that the dashboard shows
from submission to its end::

    from miniray import track_training_job, current_task

    @track_training_job(name="My Training Job", description="Trains a model")
    def train_model(epochs):
        for epoch in range(epochs):
            loss = ...
            current_task().progress(epoch + 1, epochs, {"loss": loss})
        return {"accuracy": 0.95}

Events go to the collector's HTTP ingest (POST /api/v1/events) at MINIRAY_URL,
with the bearer token MINIRAY_INGEST_TOKEN when it is set. They are sent from a
background thread: tracking never stops, slows or breaks the job. While the
collector cannot be reached, events are kept in the spool on disk, in the Go
client's format, and sent later by this client, the next job, or a collector on
the same machine. When the program exits, it waits a bounded time
(MINIRAY_FLUSH_TIMEOUT, 10 s) for its events to be acknowledged.
"""

from ._client import Client, close, flush, get_client, set_client
from ._config import parse_duration
from ._tracking import (
    Task,
    Terminated,
    cancel_on_sigterm,
    current_task,
    progress,
    track_inference_job,
    track_job,
    track_training_job,
    track_tuning_job,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Task",
    "Terminated",
    "cancel_on_sigterm",
    "close",
    "current_task",
    "flush",
    "get_client",
    "parse_duration",
    "progress",
    "set_client",
    "track_inference_job",
    "track_job",
    "track_training_job",
    "track_tuning_job",
]
