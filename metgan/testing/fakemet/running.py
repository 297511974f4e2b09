"""Running a fake Met: in a background thread (tests, benchmarks, demo) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from dataclasses import fields

from aiohttp import web

from metgan.testing.fakemet.collection import API_PREFIX, CollectionConfig
from metgan.testing.fakemet.faults import Faults
from metgan.testing.fakemet.server import FakeMet

logger = logging.getLogger(__name__)
_COLLECTION_KEYS = {f.name for f in fields(CollectionConfig)}


SCALES = ("default", "real")


def collection_config(scale: str = "default", **options) -> CollectionConfig:
    """A CollectionConfig from keyword options; an unknown one is an error naming the valid ones.

    ``scale="real"`` starts from CollectionConfig.real_scale() (a 490,000-id listing, 1 MB
    records, image redirects, hostile bodies); the options override it.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid scales: {', '.join(SCALES)}")
    unknown = sorted(set(options) - _COLLECTION_KEYS)
    if unknown:
        raise ValueError(f"unknown collection option {unknown[0]!r}; valid options: {', '.join(sorted(_COLLECTION_KEYS))}")
    return CollectionConfig.real_scale(**options) if scale == "real" else CollectionConfig(**options)


async def start_site(fake: FakeMet, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``fake`` on host:port (0 = an ephemeral port); returns the runner and the bound port."""
    runner = web.AppRunner(fake.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]
    fake.collection.set_image_base_url(f"http://{_url_host(host)}:{bound}")
    return runner, bound


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class FakeMetHandle:
    """A fake Met serving in a background thread; ``stop()`` (or leaving a ``with``) ends it."""

    def __init__(self, fake: FakeMet, host: str, port: int, loop: asyncio.AbstractEventLoop,
                 thread: threading.Thread, stopped: asyncio.Event):
        self.fake = fake
        self.host = host
        self.port = port
        self._loop, self._thread, self._stopped = loop, thread, stopped

    @property
    def root(self) -> str:
        """http://host:port, the image base URL too."""
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL (what METGAN_MET_API_URL takes)."""
        return self.root + API_PREFIX

    @property
    def image_host(self) -> str:
        """The image host name, as METGAN_IMAGE_HOSTS lists it (no port)."""
        return self.host

    @property
    def image_netloc(self) -> str:
        return f"{_url_host(self.host)}:{self.port}"

    @property
    def collection(self):
        return self.fake.collection

    def stats(self, window: float = 1.0) -> dict:
        return self.fake.stats(window)

    def set_faults(self, **changes) -> Faults:
        return self.fake.set_faults(**changes)

    @property
    def faults(self) -> Faults:
        return self.fake.faults

    def reset(self) -> None:
        self.fake.reset()

    def max_requests_in_any_window(self, seconds: float = 1.0, endpoint: str | None = None) -> int:
        return self.fake.max_requests_in_any_window(seconds, endpoint)

    def request_log(self):
        return self.fake.log.snapshot()

    def counts(self) -> dict[str, int]:
        """Requests per endpoint (objects, object, departments, search, image, other)."""
        return self.fake.stats()["by_endpoint"]

    def requested_object_ids(self) -> list[int]:
        """The ids asked for at /objects/{id}, in order, repeats included."""
        prefix = API_PREFIX + "/objects/"
        return [int(e.path[len(prefix):]) for e in self.fake.log.snapshot()
                if e.endpoint == "object" and e.path[len(prefix):].isdigit()]

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout)

    def __enter__(self) -> FakeMetHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FakeMetHandle {self.url} objects={len(self.fake.collection.objects)}>"


def run_in_thread(collection: CollectionConfig | None = None, faults: Faults | None = None, *,
                  host: str = "127.0.0.1", port: int = 0, image_cache_bytes: int = 256 * 1024 * 1024,
                  scale: str = "default", **collection_options) -> FakeMetHandle:
    """Start a fake Met in a daemon thread and return once it accepts connections.

    ``collection_options`` (seed=, objects=, image_width=, listing=, hostile=, ...) build the
    CollectionConfig when ``collection`` is not given, from ``scale``'s preset ("default" or
    "real": see collection_config).
    """
    if collection is None:
        collection = collection_config(scale, **collection_options)
    elif collection_options or scale != "default":
        raise ValueError("pass either a CollectionConfig or collection options and a scale, not both")
    fake = FakeMet(collection, faults, image_cache_bytes=image_cache_bytes)
    ready = threading.Event()
    state: dict = {}

    def main() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        stopped = asyncio.Event()
        try:
            runner, bound = loop.run_until_complete(start_site(fake, host, port))
        except BaseException as exc:           # reported to the caller, who re-raises it
            state["error"] = exc
            ready.set()
            loop.close()
            return
        state.update(loop=loop, port=bound, stopped=stopped)
        ready.set()
        try:
            loop.run_until_complete(stopped.wait())
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    thread = threading.Thread(target=main, name="fake-met", daemon=True)
    thread.start()
    ready.wait()
    if "error" in state:
        raise state["error"]
    logger.info("fake Met serving %d objects at http://%s:%d%s", len(fake.collection.objects), host,
                state["port"], API_PREFIX)
    return FakeMetHandle(fake, host, state["port"], state["loop"], thread, state["stopped"])


def serve_forever(fake: FakeMet, host: str, port: int, on_ready=None) -> None:
    """Serve in the foreground until SIGTERM or SIGINT; ``on_ready(api_url)`` runs once bound."""

    async def main() -> None:
        runner, bound = await start_site(fake, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            on_ready(f"http://{_url_host(host)}:{bound}{API_PREFIX}")
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
