"""A scan spread over a Ray cluster, recorded in one case by one writer (the head).

The head walks the folder with the one discovery rule, plans the case's resume, and hands
files to Ray actors (:class:`ScanWorker`) in bounded batches: at most ``inflight_per_worker``
files are out at any worker, so the head holds the file list and a fixed window, never a
queue that grows with the folder. Each worker loads the detector once -- refusing to score if
its checkpoint's SHA-256 (or model id, or app version) is not the head's -- then reads, hashes,
decodes and scores its files through :func:`core.scan.scan_files`, the code a local scan runs,
and sends the rows back; the head is the only writer of the case, the CSV and the JSON Lines
(:class:`core.session.ScanSession` does the recording; this module only replaces its scan loop).

Faults: a worker that dies (killed, out of memory, a node lost) has its files retried, one per
call so that a file that kills workers is isolated, on a replacement worker; after
``max_tries`` a file gets an error row saying why. Ctrl-C / cancel stop at once (rows not yet
back are not stored; ``--resume`` scores them). Ray has no authentication by default: see the
README before joining a cluster.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics_app.core.discovery import Discovery, Skipped
from forensics_app.core.loading import ImageLoadError, InMemoryImage, NotAnImage
from forensics_app.core.results import ScanResult
from forensics_app.core.session import ScanSession

WORKER_NOTE = "scored on Ray node {host} by worker {name} (pid {pid})"


class ClusterError(Exception):
    """The cluster cannot run the scan (no worker started, every worker refused or lost)."""


@dataclass(frozen=True)
class RayOptions:
    """How a scan uses Ray. ``address`` None: a private local runtime (no dashboard,
    ``workers * cpus_per_worker`` CPUs, Ray's token authentication -- its default for a
    runtime ``ray.init`` starts; Ray 2.60 still listens on every interface: see the README);
    ``"auto"`` or ``"ray://host:port"`` or ``host:port``: join that cluster."""

    address: str | None = None
    workers: int = 2
    cpus_per_worker: float = 1.0
    inflight_per_worker: int = 8  # files out at one worker at once (head memory bound)
    batch_files: int = 4  # files per call (<= inflight_per_worker)
    max_tries: int = 3  # a file whose worker died this many times gets an error row
    send_bytes: bool = False  # the head reads the files and sends their bytes
    start_timeout_s: float = 300.0  # for the first worker to load the detector
    object_store_mb: int = 256  # local runtime only

    def __post_init__(self) -> None:
        for name in ("workers", "inflight_per_worker", "batch_files", "max_tries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.cpus_per_worker <= 0:
            raise ValueError("cpus_per_worker must be > 0")


# -- the worker side -------------------------------------------------------------------------

class ScanWorker:
    """The body of one Ray actor: a detector loaded once, scoring the files it is sent.

    Loading problems (a checkpoint that is not the head's, a missing file, another app
    version) are kept as ``refusal`` -- reported by :meth:`ready` -- and the worker then
    refuses every batch.
    """

    def __init__(self, name: str, model_path: str, expected_sha256: str, expected_model_id: str,
                 version: str, detector_kwargs: dict[str, Any], options: Any,
                 model_bytes: bytes | None = None):
        from forensics_app import __version__

        self.name, self.host, self.pid = name, socket.gethostname(), os.getpid()
        self.options = options
        self.detector: Any = None
        self.refusal = ""
        if version != __version__:
            self.refusal = (f"worker runs forensics_app {__version__}, the head {version}: "
                            "install the same version on every node")
            return
        try:
            self.detector = self._load(model_path, expected_sha256, detector_kwargs,
                                       model_bytes)
        except Exception as exc:  # noqa: BLE001 -- reported by ready(), never scores
            self.refusal = f"{type(exc).__name__}: {exc}"
            return
        if self.detector.model_id != expected_model_id:
            self.refusal = (f"the worker's model id {self.detector.model_id} is not the head's "
                            f"{expected_model_id}")
            self.detector = None

    def _load(self, model_path: str, expected: str, kwargs: dict[str, Any],
              model_bytes: bytes | None) -> Any:
        from forensics_app.core.detector import Detector, file_sha256

        if model_bytes is not None:  # sent by the head: a private copy, same file name
            folder = tempfile.mkdtemp(prefix="forensics-ray-model-")
            path = Path(folder) / Path(model_path).name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(model_bytes)
        else:
            path = Path(model_path)
        # Checked before the file is loaded, and again on what was loaded (it may change).
        before = file_sha256(path)
        if before != expected:
            raise CheckpointMismatch(path, before, expected)
        detector = Detector.from_checkpoint(path, **kwargs)
        if detector.checkpoint.sha256 != expected:
            raise CheckpointMismatch(path, detector.checkpoint.sha256, expected)
        return detector

    def ready(self) -> dict[str, Any]:
        return {"name": self.name, "host": self.host, "pid": self.pid, "refusal": self.refusal}

    def score(self, items: list[tuple[str, bool, bytes | None]]
              ) -> tuple[list[ScanResult], list[Skipped]]:
        """Rows for ``items`` -- (path, sniff it, bytes or None to read the path) -- and the
        files found not to be images."""
        from forensics_app.core.scan import scan_files

        if self.detector is None:
            raise WorkerRefused(self.refusal)
        sources: list[Path | InMemoryImage] = []
        sniff: list[Path] = []
        for key, images_only, data in items:
            if data is None:
                sources.append(Path(key))
                if images_only:
                    sniff.append(Path(key))
            else:
                sources.append(InMemoryImage(key, data))
        skipped: list[Skipped] = []
        results = scan_files(sources, self.detector, self.options, sniff=sniff,
                             on_skipped=skipped.append)
        note = WORKER_NOTE.format(host=self.host, name=self.name, pid=self.pid)
        for r in results:
            r.notes.append(note)
        return results, skipped


class CheckpointMismatch(Exception):
    def __init__(self, path: Path, found: str, expected: str):
        super().__init__(f"checkpoint {path} has SHA-256 {found}, the head's is {expected}; "
                         "this worker refuses to score")


class WorkerRefused(Exception):
    """A batch sent to a worker that could not load the head's detector."""


# -- the head side ---------------------------------------------------------------------------

def start_runtime(options: RayOptions) -> bool:
    """Connect to Ray as the options say; True when this call started the runtime (and the
    caller shuts it down). Raises :class:`ClusterError` when Ray cannot start or connect."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterError("Ray is not installed (pip install the 'ray' extra: see the "
                           f"README): {exc}") from None
    if ray.is_initialized():
        return False
    try:
        if options.address in (None, "", "local"):
            import forensics_app

            # Workers import this checkout (not another install on the path).
            root = str(Path(forensics_app.__file__).resolve().parents[1])
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
            ray.init(num_cpus=max(1, int(round(options.workers * options.cpus_per_worker))),
                     include_dashboard=False,
                     object_store_memory=options.object_store_mb * 1024 * 1024,
                     runtime_env={"env_vars": {"PYTHONPATH": path}},
                     log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=options.address, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # noqa: BLE001 -- Ray raises many kinds; all mean "no cluster"
        raise ClusterError(f"cannot start or join Ray ({options.address or 'local'}): "
                           f"{type(exc).__name__}: {exc}") from None
    return True


@dataclass
class _Task:
    index: int
    path: Path
    tries: int = 0
    last_failure: str = ""


@dataclass
class _Slot:
    """One actor: where its batches are, and whether it has loaded the detector."""

    name: str
    actor: Any
    ready_ref: Any
    ready: bool = False
    inflight: int = 0  # files out at it
    info: dict[str, Any] = field(default_factory=dict)
    # running a retried file alone: nothing else goes to it, so a file that kills workers
    # takes no innocent file with it
    isolated: bool = False


@dataclass
class ClusterStats:
    """What the head saw (the benchmark and the tests read it)."""

    batches: int = 0
    retried_files: int = 0
    worker_deaths: int = 0
    max_inflight_files: int = 0
    max_queued_retries: int = 0
    workers_started: int = 0
    refusals: list[str] = field(default_factory=list)
    deaths: list[str] = field(default_factory=list)


class RayScanSession(ScanSession):
    """A :class:`ScanSession` whose files are scored by Ray actors.

    ``model_path``: the checkpoint the workers load (a path on shared storage; with
    ``send_bytes`` its bytes are sent too). ``detector_kwargs``: how workers load it
    (``Detector.from_checkpoint`` keywords; default: the head detector's device, fake index
    and levers, one torch thread per worker CPU). ``keep_results=False``: the outcome's
    ``results`` stays empty, so the head's memory does not grow with the folder (rows still
    reach the case, the reports and ``on_result``). ``worker_class``: the actor body
    (tests and the benchmark inject faults or mocked scoring).
    """

    def __init__(self, detector: Any, settings: Any, sources: Any, *, ray_options: RayOptions,
                 model_path: Path | str | None = None,
                 detector_kwargs: dict[str, Any] | None = None, keep_results: bool = True,
                 worker_class: type = ScanWorker, **kwargs: Any):
        kwargs.setdefault("command", "forensics-scan --ray")
        super().__init__(detector, settings, sources, **kwargs)
        self.ray_options = ray_options
        self.model_path = str(model_path or detector.checkpoint.path)
        cpus = max(1, int(ray_options.cpus_per_worker))
        self.detector_kwargs = detector_kwargs or {
            "device": detector.device.type, "fake_index": detector.checkpoint.fake_index,
            "levers": detector.levers, "threads": cpus}
        self.keep_results = keep_results
        self.worker_class = worker_class
        self.stats = ClusterStats()
        self.n_rows = 0
        self.extra["ray"] = {"address": ray_options.address or "local (127.0.0.1)",
                             "workers": ray_options.workers,
                             "inflight_per_worker": ray_options.inflight_per_worker,
                             "max_tries": ray_options.max_tries,
                             "send_bytes": ray_options.send_bytes}

    def _on_result(self, result: ScanResult) -> None:
        self.n_rows += 1
        if self.keep_results:
            super()._on_result(result)
            return
        if self.on_result is not None:
            self.on_result(result)
        self._recorder(result)

    # -- the scan loop, on the head
    def _scan(self, found: Discovery, progress: Callable[[int, int], None] | None,
              should_cancel: Callable[[], bool] | None) -> list[ScanResult]:
        import ray

        from forensics_app.core.scan import ScanCancelled

        opts = self.ray_options
        if not self.files:  # the case holds them all: no runtime, no workers
            return []
        if found.links:  # the link rule travels with the options: workers apply it at intake
            self.options = dataclasses.replace(self.options, links={
                **self.options.links, **{str(Path(k)): v for k, v in found.links.items()}})
        not_read = {k for k, v in self.options.links.items() if not v.followed}
        owned = start_runtime(opts)
        sniff = {str(p) for p in found.sniff}
        total, done = len(self.files), 0
        fresh: Iterator[_Task] = (_Task(i, p) for i, p in enumerate(self.files))
        retry: deque[_Task] = deque()
        slots: list[_Slot] = []
        inflight: dict[Any, tuple[_Slot, list[_Task], int]] = {}  # ref -> slot, tasks, bytes
        n_inflight_bytes = 0
        respawns_left = opts.workers * opts.max_tries
        model_ref = None
        if opts.send_bytes:
            model_ref = ray.put(Path(self.model_path).read_bytes())
        actor_cls = ray.remote(num_cpus=opts.cpus_per_worker, max_restarts=0,
                               max_task_retries=0)(self.worker_class)
        counter = iter(range(1, 1 << 30))

        def spawn() -> None:
            name = f"w{next(counter)}"
            actor = actor_cls.remote(name, self.model_path, self.detector.checkpoint.sha256,
                                     self.detector.model_id, _version(),
                                     self.detector_kwargs, self.options, model_ref)
            slots.append(_Slot(name, actor, actor.ready.remote()))
            self.stats.workers_started += 1

        def tick(n: int = 1) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        def give_up(task: _Task) -> None:
            self._on_result(ScanResult(
                path=str(task.path), index=task.index, model_id=self.detector.model_id,
                error=(f"not scored: the Ray worker scoring this file failed {task.tries} "
                       f"times (last: {task.last_failure}); stopped after --ray-max-tries "
                       f"{opts.max_tries}"),
                threshold=self._threshold[0], inconclusive_band=self._threshold[1]))
            tick()

        def lose(slot: _Slot, why: str) -> None:
            nonlocal respawns_left
            if slot not in slots:
                return
            slots.remove(slot)
            self.stats.worker_deaths += 1
            self.stats.deaths.append(f"{slot.name}: {why}")
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:  # noqa: BLE001 -- already gone
                pass
            if respawns_left > 0:
                respawns_left -= 1
                spawn()

        def next_tasks(room: int) -> list[_Task]:
            if retry:  # a file whose worker failed goes alone, so a culprit is isolated
                return [retry.popleft()]
            return [t for _, t in zip(range(room), fresh, strict=False)]

        def payload(tasks: list[_Task]) -> tuple[list, int]:
            items, n_bytes = [], 0
            for t in tasks:
                key, images_only = str(t.path), str(t.path) in sniff
                if not opts.send_bytes or key in not_read:  # never read a link out here
                    items.append((key, images_only, None))
                    continue
                data = self._read_on_head(t, images_only, tick)
                if data is not None:
                    items.append((key, images_only, data))
                    n_bytes += len(data)
            return items, n_bytes

        self._threshold = _threshold_of(self.detector, self.options)
        try:
            for _ in range(opts.workers):
                spawn()
            started = time.monotonic()
            exhausted = False
            while True:
                if should_cancel is not None and should_cancel():
                    raise ScanCancelled(self._so_far())
                for slot in list(slots):  # fill every ready worker up to its window
                    while (slot.ready and slot in slots
                           and slot.inflight < opts.inflight_per_worker and not exhausted):
                        if (opts.send_bytes and inflight
                                and n_inflight_bytes >= self.settings.max_inflight_bytes):
                            break
                        if slot.isolated or (retry and slot.inflight > 0):
                            break  # a retry goes to an idle worker and runs there alone
                        room = min(opts.batch_files, opts.inflight_per_worker - slot.inflight)
                        was_retry = bool(retry)
                        tasks = next_tasks(room)
                        if not tasks:
                            exhausted = not retry
                            break
                        items, n_bytes = payload(tasks)
                        tasks = [t for t in tasks if any(i[0] == str(t.path) for i in items)]
                        if not tasks:
                            continue
                        ref = slot.actor.score.remote(items)
                        inflight[ref] = (slot, tasks, n_bytes)
                        n_inflight_bytes += n_bytes
                        slot.inflight += len(tasks)
                        slot.isolated = was_retry
                        self.stats.batches += 1
                held = sum(len(t) for _, t, _ in inflight.values())
                self.stats.max_inflight_files = max(self.stats.max_inflight_files, held)
                self.stats.max_queued_retries = max(self.stats.max_queued_retries, len(retry))
                if exhausted and not inflight and not retry:
                    break
                if not slots:
                    raise ClusterError(self._no_workers_left())
                if not any(s.ready for s in slots) and (
                        time.monotonic() - started > opts.start_timeout_s):
                    raise ClusterError(
                        f"no Ray worker loaded the detector within {opts.start_timeout_s:.0f} s "
                        "(does the cluster have a free CPU for one? see `ray status`)")
                waiting = list(inflight) + [s.ready_ref for s in slots if not s.ready]
                finished, _ = ray.wait(waiting, num_returns=1, timeout=0.2)
                for ref in finished:
                    if ref in inflight:
                        slot, tasks, n_bytes = inflight.pop(ref)
                        n_inflight_bytes -= n_bytes
                        slot.inflight -= len(tasks)
                        slot.isolated = False
                        self._collect(ray, ref, slot, tasks, retry, tick, give_up, lose)
                    else:
                        slot = next(s for s in slots if s.ready_ref == ref)
                        self._started(ray, slot, lose, slots)
                if exhausted and retry:
                    exhausted = False
        finally:
            for slot in slots:
                try:
                    ray.kill(slot.actor, no_restart=True)
                except Exception:  # noqa: BLE001 -- already gone
                    pass
            slots.clear()
            inflight.clear()
            if owned:
                ray.shutdown()
        return self._so_far()

    def _started(self, ray: Any, slot: _Slot, lose: Callable, slots: list[_Slot]) -> None:
        try:
            info = ray.get(slot.ready_ref)
        except ray.exceptions.RayError as exc:
            lose(slot, f"died while loading the detector: {_first_line(exc)}")
            return
        if info.get("refusal"):
            self.stats.refusals.append(f"{slot.name} on {info.get('host')}: {info['refusal']}")
            slots.remove(slot)  # not replaced: another worker would refuse the same way
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
            return
        slot.ready, slot.info = True, info

    def _collect(self, ray: Any, ref: Any, slot: _Slot, tasks: list[_Task], retry: deque,
                 tick: Callable, give_up: Callable, lose: Callable) -> None:
        try:
            results, skipped = ray.get(ref)
        except ray.exceptions.RayError as exc:
            why = _first_line(exc)
            if not isinstance(exc, ray.exceptions.RayTaskError) or isinstance(
                    exc, ray.exceptions.RayActorError):
                lose(slot, why)
            for task in tasks:
                task.tries += 1
                task.last_failure = f"worker {slot.name}: {why}"
                if task.tries >= self.ray_options.max_tries:
                    give_up(task)
                else:
                    self.stats.retried_files += 1
                    retry.append(task)
            return
        by_path = {str(t.path): t for t in tasks}
        for entry in skipped:
            by_path.pop(entry.path, None)
            self._on_skipped(entry)
            tick()
        for row in results:
            task = by_path.pop(row.path, None)
            if task is None:
                continue
            row.index = task.index
            self._on_result(row)
            tick()
        for task in by_path.values():  # a worker that returned nothing for a file
            task.tries = self.ray_options.max_tries
            task.last_failure = f"worker {slot.name} returned no row for it"
            give_up(task)

    def _read_on_head(self, task: _Task, images_only: bool, tick: Callable) -> bytes | None:
        """--ray-send-bytes: the file's bytes (not hashed here: the worker hashes them), or
        None after recording why not (the row the local scan would give, made here)."""
        from forensics_app.core.loading import read_bytes_and_hash
        from forensics_app.core.scan import scan_files

        try:
            data, _ = read_bytes_and_hash(task.path, images_only=images_only, digest=False,
                                          seconds=self.settings.max_seconds_per_file)
            return data
        except NotAnImage as exc:
            self._on_skipped(Skipped(str(task.path), exc.reason, "not-image"))
            tick()
            return None
        except ImageLoadError:
            pass
        for row in scan_files([task.path], self.detector, self.options):
            row.index = task.index
            row.notes.append("read by the Ray head (--ray-send-bytes): not sent to a worker")
            self._on_result(row)
        tick()
        return None

    def _no_workers_left(self) -> str:
        parts = self.stats.refusals + self.stats.deaths
        return ("no Ray worker left to score: " + "; ".join(parts[-4:])) if parts else (
            "no Ray worker left to score")


def _threshold_of(detector: Any, options: Any) -> tuple[float, float]:
    ck = detector.checkpoint
    return (ck.threshold if options.threshold is None else options.threshold,
            ck.inconclusive_band if options.inconclusive_band is None
            else options.inconclusive_band)


def _version() -> str:
    from forensics_app import __version__

    return __version__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"

