"""A small hostile HTTP server: what a misbehaving or malicious image host, API or CSV host answers.

It listens on 127.0.0.1 (an ephemeral port) in a daemon thread and logs every path it is asked
for, so a test can assert that a refused redirect target was never requested. Routes (``n``, the
sizes and the delays are path parts so each test says what it wants):

- ``/ok.jpg``, ``/ok.json``, ``/ok.csv``: a good answer (a small JPEG, a JSON object, a CSV)
- ``/to?url=U``: 302 to ``U`` (a foreign host, another port, a relative path ...)
- ``/loop``: 302 to itself; ``/chain/<n>/<final>``: n redirects, then ``/<final>``
- ``/no-location``: a 302 without a Location header
- ``/declared/<bytes>``: declares a huge Content-Length, sends a little, then waits
- ``/endless/<type>``: a chunked body without end (stops after 200 MB or when the client goes)
- ``/short``: declares 10 000 bytes, sends 5 000 and closes
- ``/trickle``: one byte every 50 ms, for ever
- ``/type/<type>``: a small body with that Content-Type
- ``/secret``: what an internal metadata service would answer; a test asserts it is never asked
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections import Counter

from aiohttp import web
from PIL import Image

ENDLESS_CAP = 200 * 1024 * 1024
BLOCK = b"x" * 65536


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (180, 120, 60)).save(buffer, "JPEG")
    return buffer.getvalue()


class HostileServer:
    """The hostile server's state: the request log and the bytes each streaming route sent."""

    def __init__(self) -> None:
        self.paths: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.jpeg = _jpeg()
        self.csv = b"Object ID,Title\r\n1,A vase\r\n"
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.root}/{path.lstrip('/')}"

    # -- routes ---------------------------------------------------------------------------------

    async def ok(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind == "jpg":
            return web.Response(body=self.jpeg, content_type="image/jpeg")
        if kind == "json":
            return web.json_response({"total": 1, "objectIDs": [1]})
        return web.Response(body=self.csv, content_type="text/csv")

    async def to(self, request: web.Request) -> web.Response:
        # not HTTPFound: it insists on a valid URL, and a hostile server sends whatever it likes
        return web.Response(status=302, headers={"Location": request.query["url"]})

    async def loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def chain(self, request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        final = request.match_info["final"]
        raise web.HTTPFound(f"/chain/{left - 1}/{final}" if left > 1 else f"/{final}")

    async def no_location(self, request: web.Request) -> web.Response:
        return web.Response(status=302, text="moved, but where?")

    async def declared(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length":
                                               request.match_info["size"]})
        await response.prepare(request)
        await self._send(request.path, response, BLOCK)
        await asyncio.sleep(30)  # the client must give up on the declaration, not wait for the body
        return response

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": request.match_info["type"].replace("-", "/")})
        response.enable_chunked_encoding()
        await response.prepare(request)
        while self.sent[request.path] < ENDLESS_CAP:
            if not await self._send(request.path, response, BLOCK):
                break
        return response

    async def short(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": "10000"})
        await response.prepare(request)
        await self._send(request.path, response, self.jpeg[:5000].ljust(5000, b"\0"))
        request.transport.close()
        return response

    async def trickle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for byte in self.jpeg * 100:
            if not await self._send(request.path, response, bytes([byte])):
                break
            await asyncio.sleep(0.05)
        return response

    async def typed(self, request: web.Request) -> web.Response:
        return web.Response(body=b"hello, this is not what you asked for",
                            headers={"Content-Type": request.match_info["type"].replace("-", "/")})

    async def secret(self, request: web.Request) -> web.Response:
        return web.Response(body=self.jpeg, content_type="image/jpeg")  # it would pass as an image

    async def _send(self, path: str, response: web.StreamResponse, data: bytes) -> bool:
        try:
            await response.write(data)
        except (ConnectionError, RuntimeError):
            return False
        self.sent[path] += len(data)
        return True

    # -- running --------------------------------------------------------------------------------

    def app(self) -> web.Application:
        @web.middleware
        async def log_path(request: web.Request, handler):
            self.paths[request.path] += 1
            return await handler(request)

        app = web.Application(middlewares=[log_path])
        app.add_routes([
            web.get("/ok.{kind}", self.ok), web.get("/to", self.to), web.get("/loop", self.loop),
            web.get("/chain/{n}/{final}", self.chain), web.get("/no-location", self.no_location),
            web.get("/declared/{size}", self.declared), web.get("/endless/{type}", self.endless),
            web.get("/short", self.short), web.get("/trickle", self.trickle),
            web.get("/type/{type}", self.typed), web.get("/secret", self.secret),
        ])
        return app

    def start(self) -> HostileServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop, self._stopped = loop, asyncio.Event()
            try:
                runner = web.AppRunner(self.app(), handle_signals=False, shutdown_timeout=0.1)
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                self.port = runner.addresses[0][1]
            except BaseException as exc:  # re-raised by start() in the test's thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_until_complete(self._stopped.wait())
            finally:
                loop.run_until_complete(runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=main, name="hostile-http", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the hostile server did not start")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)
