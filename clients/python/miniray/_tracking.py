"""Tasks and the decorators that make them.

Each call of a decorated function is one task: task_submitted and task_started
before the body runs, then task_completed, task_failed or task_cancelled. While
the body runs, the task is the current one (a context variable), so that the
body can report progress through current_task() and so that a decorated function
called inside it becomes its child, as the Go client does through the context.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import signal
import socket
import traceback
from typing import Any, Callable, Mapping, Optional, TypeVar, Union

from . import _client as client_mod
from . import _event

log = logging.getLogger("miniray")

F = TypeVar("F", bound=Callable[..., Any])

_current: "contextvars.ContextVar[Optional[Task]]" = contextvars.ContextVar(
    "miniray_task", default=None)


class Task:
    """Task is one running call of a tracked function.

    Its attributes are read-only: id (the task id), name, task_type ("training",
    "inference", "tuning" or "task"), parent_id (None without a parent) and
    attempt (a fresh id per call, so that a fixed task id run again is a new
    attempt). The task outside any job, which current_task() returns there, is
    false, has the id "" and reports nothing.
    """

    def __init__(self, client: Optional["client_mod.Client"], task_id: str, task_type: str,
                 name: str, parent_id: Optional[str] = None) -> None:
        self.id = task_id
        self.name = name
        self.task_type = task_type
        self.parent_id = parent_id
        self.attempt = _event.new_id() if task_id else ""
        self._client = client
        self._warned_metrics = False

    def __bool__(self) -> bool:
        return bool(self.id)

    def __repr__(self) -> str:
        if not self.id:
            return "<miniray.Task none>"
        return "<miniray.Task %s %s %r>" % (self.task_type, self.id, self.name)

    def progress(self, step: int, total: Optional[int] = None,
                 metrics: Optional[Mapping[str, Any]] = None) -> None:
        """Report that the job reached step of total (None or <= 0 when unknown),
        with metrics such as {"loss": 0.1}. Values are taken as floats: numpy
        and torch scalars work, NaN and the infinities are kept; a value that is
        not a number, or has no name, is left out, with a warning; a negative step
        is not reported. It never waits: the event is queued, and dropped if the
        queue is full."""
        if self._client is None:
            return
        try:
            if int(step) < 0:
                raise ValueError("step %d is negative" % int(step))
            data: dict = {"step": int(step)}
            if total is not None and int(total) > 0:
                data["total"] = int(total)
            if metrics:
                values, bad = _event.encode_metrics(metrics)
                if values:
                    data["metrics"] = values
                if bad and not self._warned_metrics:
                    self._warned_metrics = True
                    log.warning("miniray: metrics %s of task %s are not numbers and are"
                                " left out", ", ".join(bad), self.id)
            self._emit(_event.TASK_PROGRESS, data)
        except Exception as e:  # a bad argument must not stop the job
            log.warning("miniray: progress of task %s not reported: %s", self.id, e)

    def _emit(self, event_type: str, data: dict) -> None:
        c = self._client
        if c is None:
            return
        c = c._live()  # in a forked child, the parent's client has no thread
        data = dict(data)
        data["attempt"] = self.attempt
        payload = _event.encode_event(_event.new_id(), self.id, self.task_type, self.name,
                                      event_type, data)
        c._enqueue(event_type, payload)


_NO_TASK = Task(None, "", "task", "")


def current_task() -> Task:
    """Return the task of the tracked function running in this context: its
    body, or anything it calls in the same thread or asyncio task. Outside one
    it returns a task that is false and reports nothing, so that
    current_task().progress(...) is always safe.

    A new thread starts with an empty context: to report from a thread, pass the
    task along, or run the thread's function under contextvars.copy_context()."""
    t = _current.get()
    return t if t is not None else _NO_TASK


def progress(step: int, total: Optional[int] = None,
             metrics: Optional[Mapping[str, Any]] = None) -> None:
    """Report progress of the current task; see Task.progress."""
    current_task().progress(step, total, metrics)


class Terminated(SystemExit):
    """Terminated is raised in the main thread by the handler that
    cancel_on_sigterm installs. A tracked function it stops ends CANCELLED; if
    nothing catches it the program exits with status 143, after the exit handler
    has sent the events."""


def cancel_on_sigterm() -> None:
    """Make SIGTERM stop the program the way Ctrl-C does, so that a job stopped
    by a scheduler ends CANCELLED instead of turning LOST. It must be called
    from the main thread. Without it SIGTERM ends Python at once, with no exit
    handlers, as SIGKILL does."""
    def handler(signum: int, frame: Any) -> None:
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)


class _Spec:
    """What a decorator was given."""

    def __init__(self, task_type: str, name: Optional[str], description: Optional[str],
                 task_id: Optional[str], params: Any, parent: Union[None, str, Task],
                 client: Optional["client_mod.Client"]) -> None:
        if task_type not in _event.TASK_TYPES:
            raise ValueError("task_type %r: want one of %s" % (task_type, ", ".join(
                _event.TASK_TYPES)))
        if name is not None and not isinstance(name, str):
            raise TypeError("name must be a string, not %s" % type(name).__name__)
        if description is not None and not isinstance(description, str):
            raise TypeError("description must be a string, not %s" % type(description).__name__)
        if task_id is not None and not _event.valid_id(task_id):
            raise ValueError("task_id %r: want 1 to %d ASCII letters, digits, '_' and '-'"
                             % (task_id, _event.MAX_ID_LEN))
        if isinstance(parent, Task):
            parent = parent.id or None
        if parent is not None and not _event.valid_id(parent):
            raise ValueError("parent %r: want a task id or a Task" % (parent,))
        self.task_type = task_type
        self.name = name
        self.description = description
        self.task_id = task_id
        self.params = params
        self.parent_id = parent
        self.client = client

    def wrap(self, fn: F) -> F:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError("miniray: %s is a generator function: its body runs after the"
                            " call returns, so its task cannot be tracked"
                            % getattr(fn, "__qualname__", fn))
        name = self.name or getattr(fn, "__name__", None) or "job"
        spec = self

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                task = _begin(spec, name)
                token = _current.set(task)
                try:
                    out = await fn(*args, **kwargs)
                except BaseException as e:
                    _end_error(task, e)
                    raise
                finally:
                    _current.reset(token)
                _end_ok(task, out)
                return out
            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            task = _begin(spec, name)
            token = _current.set(task)
            try:
                out = fn(*args, **kwargs)
            except BaseException as e:
                _end_error(task, e)
                raise
            finally:
                _current.reset(token)
            _end_ok(task, out)
            return out
        return run  # type: ignore[return-value]


def _begin(spec: _Spec, name: str) -> Task:
    """Publish task_submitted and task_started for a new call. A failure of
    tracking itself is logged, and the job runs untracked."""
    try:
        c = spec.client._live() if spec.client is not None else client_mod.get_client()
        task_id = spec.task_id or _event.new_task_id(spec.task_type)
        parent = spec.parent_id
        if parent is None:
            outer = _current.get()
            parent = outer.id if outer is not None and outer.id else None
        if parent == task_id:
            parent = None  # a fixed id called inside itself: the stream refuses self-parents
        task = Task(c, task_id, spec.task_type, name, parent)
        task._emit(_event.TASK_SUBMITTED, {"description": spec.description, "parent_id": parent})
        started: dict = {"host": socket.gethostname(), "pid": os.getpid()}
        if spec.params is not None:
            started["params"] = _params(spec.params)
        task._emit(_event.TASK_STARTED, started)
        if c is not None:
            c._task_running(task)
        return task
    except Exception:
        log.exception("miniray: tracking failed; the job runs untracked")
        return Task(None, spec.task_id or _event.new_task_id(spec.task_type), spec.task_type,
                    name)


def _params(p: Any) -> Any:
    try:
        return _event.encode_value(p, "params")
    except (TypeError, ValueError, OverflowError, RecursionError) as e:
        return {"error": "params do not encode: %s" % e}


def _end_ok(task: Task, out: Any) -> None:
    try:
        if task._client is not None:
            task._client._task_ended(task)
        try:
            data: dict = {"result": _event.encode_value(out, "result")}
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            data = {"reason": "result not recorded: %s" % e}
        task._emit(_event.TASK_COMPLETED, data)
    except Exception:
        log.exception("miniray: end of task %s not reported", task.id)


def _cancellation(e: BaseException) -> Optional[str]:
    """Return why e cancels the job rather than failing it, or None."""
    if isinstance(e, Terminated):
        return "terminated by a signal"
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    if isinstance(e, asyncio.CancelledError):
        return "asyncio task cancelled"
    if isinstance(e, SystemExit) and e.code in (None, 0):
        return "the program exited before the job returned"
    return None


def _end_error(task: Task, e: BaseException) -> None:
    try:
        if task._client is not None:
            task._client._task_ended(task)
        text = "".join(traceback.format_exception_only(type(e), e)).strip()
        reason = _cancellation(e)
        if reason is not None:
            task._emit(_event.TASK_CANCELLED, {"error": text, "reason": reason})
            return
        stack = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        task._emit(_event.TASK_FAILED, {"error": text, "stack": stack})
    except Exception:
        log.exception("miniray: end of task %s not reported", task.id)


def track_job(name: Any = None, description: Optional[str] = None, *,
              task_type: str = "task", task_id: Optional[str] = None, params: Any = None,
              parent: Union[None, str, Task] = None,
              client: Optional["client_mod.Client"] = None) -> Any:
    """Track every call of the decorated function as a task.

    name defaults to the function's name; description is shown with the task;
    task_type is "training", "inference", "tuning" or "task". task_id fixes the
    id instead of generating one per call, and each call is then a new attempt of
    that task. params (any JSON value) is recorded with the start. parent (an id
    or a Task) makes each call a child of that task; without it, a call made
    while another tracked function runs becomes that one's child. client
    overrides the default client.

    The call publishes task_submitted and task_started, runs the function, and
    publishes task_completed with the return value as the result when it encodes
    to JSON, task_failed with the exception's text and traceback, or
    task_cancelled on KeyboardInterrupt, asyncio cancellation or sys.exit(0). The
    return value and exceptions pass through unchanged. Coroutine functions are
    tracked until they finish; generator functions are refused with TypeError.

    It works with and without arguments: @track_job or @track_job(name="...").
    Invalid arguments raise ValueError or TypeError when decorating, not when
    the job runs.
    """
    if callable(name) and not isinstance(name, str):
        return _Spec(task_type, None, description, task_id, params, parent, client).wrap(name)
    return _Spec(task_type, name, description, task_id, params, parent, client).wrap


def track_training_job(name: Any = None, description: Optional[str] = None, *,
                       task_id: Optional[str] = None, params: Any = None,
                       parent: Union[None, str, Task] = None,
                       client: Optional["client_mod.Client"] = None) -> Any:
    """Track every call of the decorated function as a training task; see
    track_job."""
    return track_job(name, description, task_type="training", task_id=task_id, params=params,
                     parent=parent, client=client)


def track_inference_job(name: Any = None, description: Optional[str] = None, *,
                        task_id: Optional[str] = None, params: Any = None,
                        parent: Union[None, str, Task] = None,
                        client: Optional["client_mod.Client"] = None) -> Any:
    """Track every call of the decorated function as an inference task; see
    track_job."""
    return track_job(name, description, task_type="inference", task_id=task_id,
                     params=params, parent=parent, client=client)


def track_tuning_job(name: Any = None, description: Optional[str] = None, *,
                     task_id: Optional[str] = None, params: Any = None,
                     parent: Union[None, str, Task] = None,
                     client: Optional["client_mod.Client"] = None) -> Any:
    """Track every call of the decorated function as a tuning task; tracked
    functions it calls become its trials (children); see track_job."""
    return track_job(name, description, task_type="tuning", task_id=task_id, params=params,
                     parent=parent, client=client)
