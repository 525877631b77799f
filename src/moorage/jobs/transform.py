"""Batch transform: the loop that runs the store's InProgress transform jobs.

Level-triggered, like the reconciler: each pass reads the jobs InProgress or Stopping. A job
no server holds is leased and run here: instances of its model are started (by the
``InstanceStarter`` the server hands in, which lives in ``control``), its input objects are
partitioned across them by key, each object is cut into requests as TOOLKIT.md §7 says, and the
answers are assembled into ``<key>.out``. Outputs are staged on local disk and written to
``S3OutputPath`` when every object is done: those of objects that failed are not written, and a
job stopped before then leaves none. A job whose server died is taken again when its lease runs
out, and runs from the start.
"""

import asyncio
import json
import logging
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from moorage.capture import destination
from moorage.domain import TransformJobStatus
from moorage.errors import MoorageError
from moorage.http.client import UpstreamError, UpstreamTimeout
from moorage.jobs._loop import keep_working, now_ms
from moorage.jobs.data_processing import ProcessingError
from moorage.jobs.records import Batch, Record, RecordError, batches, split
from moorage.jobs.transform_inputs import InputError, InputObject, list_inputs, read_input
from moorage.jobs.transform_settings import Effective, TransformSettings
from moorage.routing import InstanceRoute
from moorage.store import TransformJobRecord, TransformJobs

log = logging.getLogger(__name__)

S = TransformJobStatus
T = TypeVar("T")
R = TypeVar("R")
_PARAMETERS_TIMEOUT_S: Final = 5.0
_SHOWN_ERROR: Final = 1000  # characters of a model's error kept in a FailureReason


class JobInstances(Protocol):
    """The instances started for one job."""

    @property
    def routes(self) -> Sequence[InstanceRoute]: ...

    async def stop(self) -> None: ...


class InstanceStarter(Protocol):
    async def start(
        self,
        job: str,
        model: Mapping[str, Any],
        instance_type: str,
        count: int,
        environment: Mapping[str, str],
    ) -> JobInstances:
        """Start ``count`` healthy instances of ``model`` (a job's ``ResolvedModel``) with
        ``environment`` over the model's; raise ``MoorageError`` with the reason if they cannot
        be started."""


class _FileFailed(Exception):
    """One input object failed; the message says why."""


class _Stopped(Exception):
    """The job was stopped while it ran."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    item: InputObject
    staged: Path | None  # None: the object failed
    reason: str | None = None


class TransformRunner:
    def __init__(
        self,
        jobs: TransformJobs,
        instances: InstanceStarter,
        staging_dir: Path,
        *,
        lease_s: float = 30.0,
        poll_s: float = 1.0,
    ) -> None:
        self._jobs = jobs
        self._instances = instances
        self._staging = staging_dir
        self._lease_ms = int(lease_s * 1000)
        self._poll_s = poll_s
        self._owner = str(uuid.uuid4())
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stop_requested: set[str] = set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        await keep_working(
            self._pass,
            self._renew,
            self._wake,
            lease_s=self._lease_ms / 1000,
            poll_s=self._poll_s,
            what="transform job",
        )

    async def _renew(self, until_ms: int) -> None:
        await asyncio.to_thread(self._jobs.renew, list(self._running), self._owner, until_ms)

    async def stop(self) -> None:
        """Server shutdown: stop the jobs under way here and give up their leases, so the
        next server to start runs them again from the start."""
        running = dict(self._running)
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        await asyncio.to_thread(self._jobs.release, list(running), self._owner)

    async def _pass(self) -> None:
        jobs = await asyncio.to_thread(self._jobs.active)
        now = now_ms()
        for job in jobs:
            key = job.name.lower()
            task = self._running.get(key)
            is_free = (
                job.lease_owner in (None, self._owner)
                or job.lease_until_ms is None
                or job.lease_until_ms < now
            )
            if job.status is S.STOPPING:
                if task is not None:
                    if key not in self._stop_requested:
                        self._stop_requested.add(key)
                        task.cancel()
                elif is_free:
                    # Nobody runs it: it was stopped before a server took it up again.
                    await asyncio.to_thread(self._jobs.set_status, job.name, S.STOPPING, S.STOPPED)
            elif task is None and is_free:
                taken = await asyncio.to_thread(
                    self._jobs.take, job.name, self._owner, now, self._lease_ms
                )
                if taken:
                    self._start(key, job)

    def _start(self, key: str, job: TransformJobRecord) -> None:
        task = asyncio.ensure_future(self._execute(job))
        self._running[key] = task

        def done(_: "asyncio.Task[None]") -> None:
            self._running.pop(key, None)
            self._stop_requested.discard(key)
            self.wake()

        task.add_done_callback(done)

    async def _execute(self, job: TransformJobRecord) -> None:
        key = job.name.lower()
        try:
            reason = await self._run_job(job)
        except (asyncio.CancelledError, _Stopped):
            if key not in self._stop_requested and not await asyncio.to_thread(
                _is_stopping, job.name, self._jobs
            ):
                raise  # the server is stopping: the job stays InProgress, to run again
            await asyncio.to_thread(self._jobs.set_status, job.name, S.STOPPING, S.STOPPED)
            log.info("transform job %s stopped", job.name)
            return
        except Exception as exc:
            log.exception("transform job %s failed", job.name)
            reason = f"moorage could not run the job: {exc}"
        status = S.COMPLETED if reason is None else S.FAILED
        moved = await asyncio.to_thread(
            self._jobs.set_status, job.name, S.IN_PROGRESS, status, failure_reason=reason
        )
        if not moved:  # StopTransformJob came between the last check and now
            await asyncio.to_thread(self._jobs.set_status, job.name, S.STOPPING, S.STOPPED)
        log.info("transform job %s: %s%s", job.name, status, f" ({reason})" if reason else "")

    async def _run_job(self, job: TransformJobRecord) -> str | None:
        """Run the job; its FailureReason, or None if every object succeeded."""
        settings = TransformSettings.read(job.document)
        try:
            inputs = await asyncio.to_thread(list_inputs, settings.input_uri, settings.data_type)
        except InputError as exc:
            return str(exc)
        try:
            instances = await self._instances.start(
                job.name,
                job.document["ResolvedModel"],
                settings.instance_type,
                settings.instance_count,
                settings.container_environment(),
            )
        except MoorageError as exc:
            return str(exc)
        staging = self._staging / f"{job.name.lower()}-{uuid.uuid4().hex[:8]}"
        try:
            routes = list(instances.routes)
            effective = settings.effective(await _execution_parameters(routes[0]))
            log.info("transform job %s: %d objects on %d instances, %s",
                     job.name, len(inputs), len(routes), effective)  # fmt: skip
            parts = [inputs[i :: len(routes)] for i in range(len(routes))]
            outcomes = await asyncio.gather(
                *(
                    _Instance(route, settings, effective, staging).run(part)
                    for route, part in zip(routes, parts, strict=True)
                )
            )
            done = sorted((o for part in outcomes for o in part), key=lambda o: o.item.relative)
            if await asyncio.to_thread(_is_stopping, job.name, self._jobs):
                raise _Stopped
            await asyncio.to_thread(_publish, settings, done)
        finally:
            await instances.stop()
            await asyncio.to_thread(shutil.rmtree, staging, True)
        failed = [o for o in done if o.staged is None]
        if not failed:
            return None
        first = failed[0]
        others = f" ({len(failed) - 1} more of {len(done)} input objects failed too)"
        return f"{first.reason}{others if len(failed) > 1 else ''}"


def _is_stopping(name: str, jobs: TransformJobs) -> bool:
    current = jobs.get(name)
    return current is not None and current.status is S.STOPPING


def _publish(settings: TransformSettings, outcomes: list[_Outcome]) -> None:
    target = destination(settings.output_path, "S3OutputPath")
    for outcome in outcomes:
        if outcome.staged is not None:
            data = outcome.staged.read_bytes()
            target.write(f"{outcome.item.relative}.out", data, settings.accept)


async def _execution_parameters(route: InstanceRoute) -> dict[str, Any] | None:
    """The container's answer to GET /execution-parameters; None when it gives none."""
    try:
        answer = await route.pool.request(
            "GET", "/execution-parameters", [], b"", timeout=_PARAMETERS_TIMEOUT_S
        )
    except UpstreamError:
        return None
    if answer.status != 200:
        return None
    try:
        parameters = json.loads(bytes(answer.body))
    except ValueError:
        return None
    return parameters if isinstance(parameters, dict) else None


class _Instance:
    """One instance working through its share of the input objects."""

    def __init__(
        self, route: InstanceRoute, settings: TransformSettings, effective: Effective, staging: Path
    ) -> None:
        self._route = route
        self._settings = settings
        self._effective = effective
        self._staging = staging
        self._headers = settings.headers()
        # Requests in flight on this instance, whichever objects they are of.
        self._slots = asyncio.Semaphore(effective.max_concurrent)

    async def run(self, items: list[InputObject]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        await _work_through(items, self._effective.max_concurrent, self._object, outcomes.append)
        return outcomes

    async def _object(self, item: InputObject) -> _Outcome:
        try:
            output = await self._transform(item)
        except (_FileFailed, InputError) as exc:
            return _Outcome(item, None, f"{item.uri}: {exc}")
        path = self._staging.joinpath(*f"{item.relative}.out".split("/"))
        await asyncio.to_thread(_write, path, output)
        return _Outcome(item, path)

    async def _transform(self, item: InputObject) -> bytes:
        settings = self._settings
        body = await asyncio.to_thread(read_input, item, settings.compression)
        try:
            requests = await asyncio.to_thread(_requests, body, settings, self._effective)
        except (RecordError, ProcessingError) as exc:
            raise _FileFailed(str(exc)) from exc
        pieces: list[bytes] = [b""] * len(requests)

        async def send(index: int) -> None:
            batch, inputs = requests[index]
            answer = await self._invoke(batch.body)
            pieces[index] = _assemble(settings, inputs, answer)

        def keep(_: None) -> None:
            pass

        await _work_through(list(range(len(requests))), self._effective.max_concurrent, send, keep)
        return b"".join(pieces)

    async def _invoke(self, body: bytes) -> bytes:
        settings = self._settings
        problem = ""
        for _ in range(settings.retries + 1):
            async with self._slots:
                self._route.outstanding += 1
                try:
                    answer = await self._route.invoke(
                        None, self._headers, [body], settings.timeout_s
                    )
                except UpstreamTimeout:
                    problem = (
                        "the model did not answer within InvocationsTimeoutInSeconds "
                        f"({settings.timeout_s} s)"
                    )
                    continue
                except UpstreamError as exc:
                    problem = f"the instance failed before answering: {exc}"
                    continue
                finally:
                    self._route.outstanding -= 1
            if 200 <= answer.status < 300:
                return bytes(answer.body)
            text = bytes(answer.body).decode("utf-8", "replace")[:_SHOWN_ERROR]
            problem = f"the model answered {answer.status}: {text}"
        raise _FileFailed(f"{problem} (after {settings.retries + 1} attempts)")


async def _work_through(
    items: Sequence[T],
    workers: int,
    work: Callable[[T], Awaitable[R]],
    keep: Callable[[R], None],
) -> None:
    """Run ``work`` on every item, ``workers`` at a time; the first failure cancels the rest."""
    iterator: Iterator[T] = iter(items)

    async def worker() -> None:
        for item in iterator:
            keep(await work(item))

    tasks = [asyncio.ensure_future(worker()) for _ in range(max(1, min(workers, len(items))))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _requests(
    body: bytes, settings: TransformSettings, effective: Effective
) -> list[tuple[Batch, list[bytes]]]:
    """The requests of one object, each with the input records it holds (before InputFilter,
    for JoinSource)."""
    processing = settings.processing
    records = split(body, settings.split_type)
    sent = records
    if processing.filters_input:
        sent = [
            Record(processing.filter_input(r.payload), processing.filter_input(r.framed))
            for r in records
        ]
    result = []
    at = 0
    for batch in batches(
        sent, settings.split_type, effective.strategy, effective.max_payload_bytes
    ):
        count = len(batch.records)
        originals = records[at : at + count]
        at += count
        inputs = [line for r in originals for line in processing.records_of(r.payload)]
        result.append((batch, inputs))
    return result


def _assemble(settings: TransformSettings, inputs: list[bytes], answer: bytes) -> bytes:
    """One request's share of the output object."""
    processing = settings.processing
    if processing.processes_output:
        try:
            records = processing.process_output(inputs, answer)
        except ProcessingError as exc:
            raise _FileFailed(str(exc)) from exc
        if settings.assemble_with_line:
            return b"".join(record + b"\n" for record in records)
        return b"".join(records)
    if settings.assemble_with_line and not answer.endswith(b"\n"):
        return answer + b"\n"
    return answer


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
