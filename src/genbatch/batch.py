"""The Python API: load a manifest, sync it into the ledger, run it. The CLI is a thin layer on it.

from genbatch import run_manifest
summary = run_manifest("sweep.yaml", simulate=True)

``arun_manifest`` does the work, in the caller's event loop (through ``open_async_session``);
``run_manifest`` is a sync wrapper over it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import warnings
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from genbatch import preflight
from genbatch.catalog import CatalogEntry
from genbatch.client import DEFAULT_API_BASE, RunComfyClient, Timeouts
from genbatch.downloads import is_loopback
from genbatch.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_JOBS_NOT_DONE,
    EXIT_OK,
    GenbatchError,
    LedgerError,
    TransactionEnded,
    UsageError,
)
from genbatch.events import EventSink, ignore_events
from genbatch.export import ALL_STATES, ExportFilter, ledger_export_rows, write_run_metadata
from genbatch.ledger import (
    REHEARSAL_SUFFIX,
    Ledger,
    RunInfo,
    SyncReport,
    open_ledger_for,
    resolve_location,
)
from genbatch.ledger_registry import remember
from genbatch.manifest import Manifest, load_manifest, model_ids_of
from genbatch.model_catalog import cache_entries, cached_entries, look_up
from genbatch.pricing import PriceTable
from genbatch.runner import Runner, RunOptions, RunSummary
from genbatch.states import JobState

if TYPE_CHECKING:
    from genbatch.simulator import Simulator

TOKEN_ENV = "RUNCOMFY_TOKEN"
CONFIG_DIR_ENV = "RUNCOMFY_CONFIG_DIR"
TOKEN_FILE = "token.json"
API_BASE_ENV = "RUNCOMFY_API_BASE"
# With --simulate the bundled simulator plays a 4-minute clip in about a second.
SIMULATE_TIME_SCALE = 0.004
SIMULATE_POLL_SCALE = 0.02


@dataclass(frozen=True, kw_only=True)
class Connection:
    """Where the API is and how to authenticate: never printed with its token."""

    api_base: str
    token: str | None = field(repr=False)
    token_source: str = "the bundled simulator"
    """Where the token came from (``$RUNCOMFY_TOKEN`` or a token file), for a refused token."""


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """A manifest loaded, its run found or created in the ledger, its jobs synced."""

    manifest: Manifest
    ledger: Ledger
    run: RunInfo
    sync: SyncReport
    reused: int = 0
    """Jobs done in another run of the ledger whose files this run reused (nothing sent)."""


def resolve_connection(api_base: str | None, *, allow_insecure: bool = False) -> Connection:
    """The API base (``--api-base``, ``$RUNCOMFY_API_BASE``, default) and the token
    (``$RUNCOMFY_TOKEN``, else the official runcomfy CLI's ``token.json``)."""
    base = (api_base or os.environ.get(API_BASE_ENV) or DEFAULT_API_BASE).rstrip("/")
    parts = urlsplit(base)
    if "@" in parts.netloc:
        # Refused, not redacted: a password in the URL would be sent, and then shown, by every
        # layer that prints the API base. Not even the refusal quotes it.
        raise UsageError(
            "--api-base: a user name or password in the URL (user:password@host) is refused; "
            f"the API authenticates with {TOKEN_ENV} only"
        )
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"--api-base: not an http(s) URL: {base}")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure:
        raise UsageError(
            f"--api-base: refusing plain http:// to {parts.hostname} (the token "
            "would travel in clear); use https:// or --allow-insecure"
        )
    token, source = os.environ.get(TOKEN_ENV), f"${TOKEN_ENV}"
    if not token:
        token, source = token_from_config(), str(token_file())
    if not token:
        raise UsageError(
            f"no API token: set {TOKEN_ENV} or log in with the runcomfy CLI "
            f"({token_file()}) (or use --simulate to rehearse against the bundled "
            "simulator)"
        )
    return Connection(api_base=base, token=token, token_source=source)


def optional_connection(api_base: str | None, *, allow_insecure: bool = False) -> Connection | None:
    """The API ``resolve_connection`` finds, or None when there is none to use (no token): the
    catalog is then read from the ledger's cache and the bundled snapshot only. A run reports
    the reason itself, when it connects."""
    try:
        return resolve_connection(api_base, allow_insecure=allow_insecure)
    except UsageError:
        return None


def token_file() -> Path:
    """Where the official runcomfy CLI keeps its login: ``$RUNCOMFY_CONFIG_DIR``, else
    ``$XDG_CONFIG_HOME/runcomfy``, else ``~/.config/runcomfy``; the file ``token.json``."""
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV]).expanduser() / TOKEN_FILE
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home).expanduser() / "runcomfy" / TOKEN_FILE


def token_from_config() -> str | None:
    """The ``access_token`` of the official CLI's ``token.json``, or None when there is none.

    A file that exists but cannot be used is an error naming the file, never its content.
    """
    path = token_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read the API token file {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"the API token file {path} is not JSON") from None
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token.strip():
        raise UsageError(f"the API token file {path} has no access_token")
    return token.strip()


def open_manifest(
    path: str | Path, *, max_jobs: int | None = None, strict_models: bool = False
) -> Manifest:
    """Load and validate a manifest: every job checked against its model's schema, no two jobs
    alike or writing the same file. Before ``prepare``, ``load_manifest`` is enough: ``prepare``
    validates every job in the walk that syncs it."""
    manifest = load_manifest(path, strict_models=strict_models, max_jobs=max_jobs)
    manifest.validate()
    return manifest


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """A manifest loaded with the API's catalog, and notes on how the catalog was read."""

    manifest: Manifest
    notes: tuple[str, ...] = ()


async def aload_with_catalog(
    path: str | Path,
    *,
    ledger: str | None = None,
    connection: Connection | None = None,
    timeouts: Timeouts | None = None,
    strict_models: bool = False,
    max_jobs: int | None = None,
) -> Loaded:
    """Load a manifest with the schemas and prices of RunComfy's catalog: the entries the ledger
    has cached (a resumed run keeps what it started with), the others fetched through
    ``connection`` (none without one). Nothing is written: the run caches what it used
    (``prepare``). A ledger that is not there yet, or a catalog that cannot be read, leaves the
    bundled snapshot in charge (with a note), never an error."""
    model_ids = model_ids_of(path)
    cached = cached_catalog(ledger, manifest=path, model_ids=model_ids)
    if connection is None:
        lookup = await look_up(model_ids, cached=cached, client=None)
    else:
        async with client_for(connection, timeouts=timeouts) as client:
            lookup = await look_up(model_ids, cached=cached, client=client)
    manifest = load_manifest(
        path, catalog=lookup.catalog, strict_models=strict_models, max_jobs=max_jobs
    )
    return Loaded(manifest=manifest, notes=lookup.notes)


def load_with_catalog(
    path: str | Path,
    *,
    ledger: str | None = None,
    connection: Connection | None = None,
    timeouts: Timeouts | None = None,
    strict_models: bool = False,
    max_jobs: int | None = None,
) -> Loaded:
    """``aload_with_catalog`` for a caller with no event loop running (the CLI)."""
    load = partial(
        aload_with_catalog,
        path,
        ledger=ledger,
        connection=connection,
        timeouts=timeouts,
        strict_models=strict_models,
        max_jobs=max_jobs,
    )
    return anyio.run(load)


def cached_catalog(
    given: str | None, *, manifest: str | Path | None, model_ids: set[str] | None = None
) -> dict[str, CatalogEntry]:
    """The catalog entries cached in the ledger ``given`` (else the one found from
    ``manifest``'s folder), for ``model_ids`` (every one when None); none when there is no
    ledger yet or it cannot be read (the command's own use of the ledger says why)."""
    folder = None if manifest is None else Path(manifest).resolve().parent
    location = resolve_location(given, manifest_dir=folder, may_create=False)
    if location.sqlite_path is not None and not location.sqlite_path.exists():
        return {}
    try:
        store = Ledger.open(location)
    except LedgerError:
        return {}
    try:
        return cached_entries(store, model_ids)
    finally:
        store.close()


def prepare(manifest: Manifest, ledger: Ledger, prices: PriceTable | None = None) -> Prepared:
    """Find or create the manifest's run and sync its jobs (with their estimated cost).

    Every job is validated in the walk that syncs it (``Manifest.validated_jobs``), in one
    transaction with the run's creation: a manifest found bad halfway leaves the ledger as it
    was. A resume of a manifest unchanged since its last sync (same files, options, prices)
    neither expands nor validates it again (see ``Ledger.sync_run``).
    """
    table = prices or manifest_prices(manifest)
    # The catalog entries the jobs are checked against, kept for the resumes (an entry cached
    # already stays: a resume checks against the schema its run started with).
    cache_entries(ledger, manifest.catalog.entries.values())
    run, report = ledger.sync_run(
        manifest.name,
        str(manifest.path),
        manifest.validated_jobs(),
        cost=lambda spec: table.cost(spec.model_id, spec.inputs),
        fingerprint=jobs_fingerprint(manifest, table),
    )
    return Prepared(manifest=manifest, ledger=ledger, run=run, sync=report)


def jobs_fingerprint(manifest: Manifest, prices: PriceTable) -> str:
    """What a sync of ``manifest`` at ``prices`` depends on, hashed: the manifest's digest and
    the price of each of its models (pending jobs' estimated costs come from them)."""
    used = {
        model_id: prices.price_of(model_id)
        for model_id in sorted({block.model_id for block in manifest.blocks})
    }
    return hashlib.sha256(f"{manifest.digest}\n{used!r}".encode()).hexdigest()


def client_for(connection: Connection, *, timeouts: Timeouts | None = None) -> RunComfyClient:
    """A client of the API ``connection`` names; open it with ``async with``."""
    # The client's pool stays small whatever the concurrency (see DEFAULT_MAX_CONNECTIONS).
    return RunComfyClient(base_url=connection.api_base, token=connection.token, timeouts=timeouts)


def manifest_prices(manifest: Manifest) -> PriceTable:
    """The manifest's prices: its ``prices:``, its schema files', the API's catalog entries it
    was loaded with (``load_with_catalog``), the bundled snapshot's."""
    return PriceTable(
        manifest=manifest.settings.prices,
        schemas=manifest.schemas,
        catalog=manifest.catalog.entries,
    )


def check_budget_coverage(prepared: Prepared, budget_usd: float | None) -> None:
    """Refuse a budget that some pending jobs could slip through (no known price)."""
    if budget_usd is None:
        return
    unpriced = prepared.ledger.unpriced_pending(prepared.run.id)
    if unpriced:
        raise UsageError(
            f"a budget is set but {unpriced} pending job(s) use a model with no "
            "known price: give it one under prices: in the manifest"
        )


def options_for(
    manifest: Manifest,
    *,
    concurrency: int | None = None,
    base: RunOptions | None = None,
    shared_ledger: bool = False,
) -> RunOptions:
    """Run options from the manifest's settings, overridden by the command line.

    On a shared (PostgreSQL) ledger the manifest's ``concurrency`` holds for the run as a whole
    and ``--concurrency`` caps this worker's share; on a single-process SQLite ledger the two are
    the same limit, and the command line wins.
    """
    options = base or RunOptions()
    settings = manifest.settings
    changes: dict[str, object] = {
        "concurrency": concurrency or manifest.concurrency or options.concurrency,
        # The manifest's limit holds for the run as a whole, however many workers share it.
        "run_concurrency": manifest.concurrency if shared_ledger else None,
        "max_attempts": settings.max_attempts or options.max_attempts,
        "allowed_hosts": tuple(settings.allowed_hosts or ()) + options.allowed_hosts,
        "budget_usd": options.budget_usd if options.budget_usd is not None else settings.budget_usd,
    }
    if settings.max_file_size:
        changes["max_file_size"] = settings.max_file_size
    return replace(options, **changes)  # type: ignore[arg-type]  # RunOptions fields


async def execute(
    prepared: Prepared,
    connection: Connection,
    options: RunOptions,
    events: EventSink = ignore_events,
) -> RunSummary:
    """Run a prepared manifest against the API until it is settled, stopped or interrupted."""
    async with client_for(connection) as client:
        return await execute_with(prepared, client, options, events)


async def execute_with(
    prepared: Prepared,
    client: RunComfyClient,
    options: RunOptions,
    events: EventSink = ignore_events,
) -> RunSummary:
    """``execute`` through a client already open (the one a session priced the jobs with)."""
    check_budget_coverage(prepared, options.budget_usd)
    runner = Runner(
        ledger=prepared.ledger, client=client, run=prepared.run, options=options, events=events
    )
    return await runner.run()


SIMULATOR_PORTS = (20000, 10000)
"""The first port and the number of ports a ``--simulate`` run's simulator picks from, by its
ledger: the same ledger gets the same port, so the file URLs an interrupted rehearsal recorded
still answer when it resumes."""


@contextmanager
def simulated_connection(*, seed: int | None = None) -> Iterator[Connection]:
    """Start the bundled simulator in this process and yield a connection to it."""
    with _simulator(seed=seed) as simulator:
        yield Connection(api_base=simulator.base_url, token=simulator.token)


@contextmanager
def _simulator(*, seed: int | None = None, ledger: str | None = None) -> Iterator[Simulator]:
    """The bundled simulator, started in this process (on ``ledger``'s port when free)."""
    from genbatch.simulator import Simulator, SimulatorConfig

    config = SimulatorConfig(
        time_scale=SIMULATE_TIME_SCALE, capacity=8, seed=seed if seed is not None else 0
    )
    first, count = SIMULATOR_PORTS
    port = 0 if ledger is None else first + zlib.crc32(ledger.encode()) % count
    try:
        simulator = Simulator(config, port=port).start()
    except OSError:  # taken: any free port (files being fetched are then fetched next time)
        simulator = Simulator(config).start()
    try:
        yield simulator
    finally:
        simulator.stop()


def _adopt_in_flight(simulator: Simulator, prepared: Prepared) -> None:
    """A rehearsal resumed: the simulator takes on the requests the ledger holds in flight,
    which a simulator now gone created, so they finish instead of expiring."""
    for job in prepared.ledger.attached_jobs(prepared.run.id):
        assert job.request_id is not None
        simulator.adopt(
            job.request_id,
            job.model_id,
            dict(job.inputs),
            generated=job.state is JobState.FETCHING,
        )


@dataclass(frozen=True, kw_only=True)
class Session:
    """Everything a run needs, set up: the synced run, where the API is, the options."""

    prepared: Prepared
    connection: Connection
    options: RunOptions


@dataclass(frozen=True, kw_only=True)
class AsyncSession(Session):
    """A session whose API client is open: the run uses it."""

    client: RunComfyClient = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class _Reached:
    """The API reached (or the simulator started) and the ledger open and locked."""

    connection: Connection
    store: Ledger
    options: RunOptions
    """The caller's options (else the Python API's defaults), polls scaled for the simulator."""
    simulator: Simulator | None = field(default=None, repr=False)
    """The bundled simulator started in this process (``simulate``)."""


@contextmanager
def _reach(
    manifest: Manifest,
    *,
    ledger: str | None,
    api_base: str | None,
    simulate: bool,
    allow_insecure: bool,
    options: RunOptions | None,
) -> Iterator[_Reached]:
    """Connect (or start the simulator), open the ledger and take its lock; undo on exit."""
    base = options or RunOptions(handle_signals=False)
    # Before anything is sent: a problem found here costs nothing.
    preflight.check_manifest_folders(manifest)
    preflight.check_earlier_default_ledger(manifest, ledger, rehearsal=simulate)
    with ExitStack() as stack:
        connection = (
            None if simulate else resolve_connection(api_base, allow_insecure=allow_insecure)
        )
        store = stack.enter_context(
            open_ledger_for(ledger, manifest=manifest.path, may_create=True, rehearsal=simulate)
        )
        stack.enter_context(store.exclusive())
        path = store.location.sqlite_path
        if not simulate and path is not None and path.name.endswith(REHEARSAL_SUFFIX):
            raise LedgerError(
                f"{store.location.display} is a rehearsal's ledger (--simulate): its jobs were "
                "never paid for nor generated, so a real run never uses it: leave out --ledger "
                "(and GENBATCH_LEDGER), or add --simulate"
            )
        found_beside = store.location.searched_from is not None and not simulate
        if found_beside and path is not None:
            remember(path)  # found from the manifest: listed for later
        simulator = None
        if simulate:
            assert path is not None  # a rehearsal's ledger is a file
            simulator = stack.enter_context(_simulator(ledger=str(path.resolve())))
            connection = Connection(api_base=simulator.base_url, token=simulator.token)
            # Scaled times enter no ledger history: a real run on this ledger would poll its
            # first jobs far too early.
            base = replace(base, poll=base.poll.scaled(SIMULATE_POLL_SCALE), ledger_history=False)
        assert connection is not None
        yield _Reached(connection=connection, store=store, options=base, simulator=simulator)


def _synced_run(
    manifest: Manifest, reached: _Reached, prices: PriceTable, concurrency: int | None
) -> tuple[Prepared, RunOptions]:
    """The manifest synced at ``prices``, and the run's options. Nothing is sent yet, and
    each step is one the next run would do again: a transaction PostgreSQL ended (rolled back)
    makes them run once more, as mid-run calls do."""
    try:
        prepared = _synced(manifest, reached.store, prices)
    except TransactionEnded:
        prepared = _synced(manifest, reached.store, prices)
    if reached.simulator is not None:
        _adopt_in_flight(reached.simulator, prepared)
    options = options_for(
        manifest, concurrency=concurrency, base=reached.options, shared_ledger=reached.store.shared
    )
    return prepared, options


def _synced(manifest: Manifest, store: Ledger, prices: PriceTable) -> Prepared:
    preflight.check_run_owner(store, manifest)
    prepared = prepare(manifest, store, prices)
    preflight.check_run_folders(store, prepared.run, manifest)
    reused = preflight.reuse_or_refuse(store, prepared.run)
    if reused:
        counts = store.counts(prepared.run.id)
        prepared = replace(prepared, sync=replace(prepared.sync, counts=counts), reused=reused)
    return prepared


@contextmanager
def open_session(
    manifest: Manifest,
    *,
    ledger: str | None = None,
    api_base: str | None = None,
    simulate: bool = False,
    allow_insecure: bool = False,
    concurrency: int | None = None,
    options: RunOptions | None = None,
) -> Iterator[Session]:
    """Connect (or start the simulator), take the ledger's lock, price and sync the jobs.

    The schemas and prices are those ``manifest`` was loaded with: ``load_with_catalog`` for
    the API's catalog, as ``genbatch run`` does. For a caller with no event loop running (the
    ``genbatch run`` command); inside a running loop, use ``open_async_session``.
    """
    manifest = manifest.rehearsal() if simulate else manifest
    with _reach(
        manifest,
        ledger=ledger,
        api_base=api_base,
        simulate=simulate,
        allow_insecure=allow_insecure,
        options=options,
    ) as reached:
        prices = manifest_prices(manifest)
        prepared, run_options = _synced_run(manifest, reached, prices, concurrency)
        yield Session(prepared=prepared, connection=reached.connection, options=run_options)


@asynccontextmanager
async def open_async_session(
    manifest: Manifest,
    *,
    ledger: str | None = None,
    api_base: str | None = None,
    simulate: bool = False,
    allow_insecure: bool = False,
    concurrency: int | None = None,
    options: RunOptions | None = None,
) -> AsyncIterator[AsyncSession]:
    """``open_session`` in the caller's event loop, with the API client open for the run
    (``execute_with``). ``arun_manifest`` and ``run_manifest`` run through here.
    """
    # The ledger's calls are synchronous for now: opening it, taking its lock and the sync
    # (seconds for a large manifest) block the caller's loop, as does starting and stopping the
    # simulator's thread with ``simulate``.
    manifest = manifest.rehearsal() if simulate else manifest
    with _reach(
        manifest,
        ledger=ledger,
        api_base=api_base,
        simulate=simulate,
        allow_insecure=allow_insecure,
        options=options,
    ) as reached:
        async with client_for(reached.connection) as client:
            prices = manifest_prices(manifest)
            prepared, run_options = _synced_run(manifest, reached, prices, concurrency)
            yield AsyncSession(
                prepared=prepared, connection=reached.connection, options=run_options, client=client
            )


async def arun_manifest(
    path: str | Path,
    *,
    ledger: str | None = None,
    api_base: str | None = None,
    simulate: bool = False,
    concurrency: int | None = None,
    options: RunOptions | None = None,
    events: EventSink = ignore_events,
) -> RunSummary:
    """Run a manifest in the caller's event loop (a notebook's, an application's): the same as
    ``genbatch run``, returning its summary. ``summary = await genbatch.arun_manifest(path)``.
    """
    connection = None if simulate else optional_connection(api_base)
    # Validated as it is synced.
    manifest = (await aload_with_catalog(path, ledger=ledger, connection=connection)).manifest
    async with open_async_session(
        manifest,
        ledger=ledger,
        api_base=api_base,
        simulate=simulate,
        concurrency=concurrency,
        options=options,
    ) as session:
        summary = await execute_with(session.prepared, session.client, session.options, events)
        # A few file writes: they block the caller's loop, briefly. Their failure (a full
        # disk, a metadata.jsonl that is not genbatch's) warns: the run's outcome is the summary.
        try:
            write_run_metadata(session.prepared.ledger, session.prepared.run.id)
        except GenbatchError as exc:
            warnings.warn(f"metadata.jsonl not updated: {exc}", stacklevel=2)
        return summary


def run_manifest(
    path: str | Path,
    *,
    ledger: str | None = None,
    api_base: str | None = None,
    simulate: bool = False,
    concurrency: int | None = None,
    options: RunOptions | None = None,
    events: EventSink = ignore_events,
) -> RunSummary:
    """Run a manifest from Python: the same as ``genbatch run``, returning its summary.

    Called where an event loop is already running (a Jupyter cell: the kernel runs one), it
    runs the run on a loop of its own in another thread and blocks until it ends, ``events``
    then being called from that thread; ``await arun_manifest(...)`` keeps the loop free.
    """
    in_loop = _event_loop_running()
    if in_loop and options is not None:
        # Signals are delivered to the main thread only: the run's thread cannot watch them.
        options = replace(options, handle_signals=False)
    run = partial(
        arun_manifest,
        path,
        ledger=ledger,
        api_base=api_base,
        simulate=simulate,
        concurrency=concurrency,
        options=options,
        events=events,
    )
    return _run_in_own_thread(run) if in_loop else anyio.run(run)


def _event_loop_running() -> bool:
    """Whether this thread is inside a running asyncio loop (where ``anyio.run`` raises)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_in_own_thread(run: Callable[[], Awaitable[RunSummary]]) -> RunSummary:
    """``run()`` on a new event loop in a thread of its own, waited for.

    The caller's loop cannot run it: this function is synchronous, so that loop is blocked
    while it waits. An interrupt while waiting (a notebook's stop button) cancels the run and
    waits for it to unwind, as Ctrl-C does to ``anyio.run``, then propagates.
    """
    with anyio.from_thread.start_blocking_portal() as portal:
        return portal.call(run)


def results(
    path: str | Path,
    *,
    ledger: str | None = None,
    all_states: bool = False,
    simulate: bool = False,
) -> list[dict[str, Any]]:
    """What a manifest's run produced: the rows of ``genbatch export``, one per output file
    (file path, prompt, inputs, request id, sha256, cost...); with ``all_states`` also one row per
    job not done, with its state and error; with ``simulate``, those of its rehearsal.
    ``LedgerError`` when there is no ledger at all."""
    manifest = load_manifest(path)
    with open_ledger_for(ledger, manifest=manifest.path, rehearsal=simulate) as store:
        run = store.find_run(manifest.name)
        if run is None:
            return []
        wanted = ALL_STATES if all_states else ExportFilter()
        return list(ledger_export_rows(store, [run.id], wanted))


def exit_code_for(summary: RunSummary) -> int:
    """The CLI's exit code for a finished run (documented in the README)."""
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if isinstance(summary.stop_error, GenbatchError):
        return summary.stop_error.exit_code
    if summary.stop_error is not None:
        return EXIT_ENVIRONMENT
    return EXIT_OK if summary.all_done else EXIT_JOBS_NOT_DONE
