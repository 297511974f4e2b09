"""The fake Met as an aiohttp application: API routes, image host, faults, accounting, admin.

Routes (the API under the real path prefix, so a client's base-URL handling is exercised):

    GET  /public/collection/v1/objects[?metadataDate=YYYY-MM-DD&departmentIds=1|3]
    GET  /public/collection/v1/objects/{id}     (hostile and huge bodies as bytes, see collection.py)
    GET  /public/collection/v1/departments
    GET  /public/collection/v1/search?q=...[&hasImages=true&departmentId=N]
    GET  /CRDImages/{dept}/{original|web-large}/{file name}     (percent-decoded by aiohttp;
         a redirecting object's image answers 302 to its target + ?moved=1)
    GET  /__fake__/stats[?window=1.0]    POST /__fake__/faults (JSON knobs)    POST /__fake__/reset
    GET  /__fake__/log                   GET  /__fake__/objects (the truth about every object)

Admin routes are never faulted, blocked or counted.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import socket
import struct
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

from aiohttp import web

from metgan.testing.fakemet import images as drawing
from metgan.testing.fakemet.collection import (
    API_PREFIX,
    DEPARTMENTS,
    IMAGE_PREFIX,
    Collection,
    CollectionConfig,
    ImageRef,
)
from metgan.testing.fakemet.faults import Faults, FaultState

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/__fake__"
RENDITIONS = {"original": 1.0, "web-large": None}     # None: the collection's small_scale
JSON_TYPE = "application/json"
BLOCK_PAGE = (
    '<html style="height:100%"><head><META NAME="ROBOTS" CONTENT="NOINDEX, NOFOLLOW">'
    '<meta name="format-detection" content="telephone=no"><meta name="viewport" content="initial-scale=1.0">'
    '<meta http-equiv="X-UA-Compatible" content="IE=edge,chrome=1"></head><body style="margin:0px;height:100%">'
    '<iframe id="main-iframe" src="/_Incapsula_Resource?SWUDNSAI=31&xinfo=2-38386998-0%200NNN%20RT%28{ms}%20133%29'
    '&incident_id={incident}&edet=15&cinfo=03000000" frameborder=0 width="100%" height="100%" marginheight="0px" '
    'marginwidth="0px">Request unsuccessful. Incapsula incident ID: {incident}</iframe></body></html>'
)


@dataclass
class LoggedRequest:
    time: float            # time.monotonic() at arrival
    method: str
    path: str              # decoded path
    query: str
    endpoint: str          # objects, object, departments, search, image, other
    status: int = 0        # 0 while in flight; -1 for a reset connection
    fault: str | None = None

    def as_json(self) -> dict:
        return {"time": self.time, "method": self.method, "path": self.path, "query": self.query,
                "endpoint": self.endpoint, "status": self.status, "fault": self.fault}


class RequestLog:
    """Every non-admin request, in arrival order (thread-safe: read from tests while serving)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.entries: list[LoggedRequest] = []

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self.entries = []

    def snapshot(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self.entries)

    def max_in_window(self, seconds: float = 1.0, endpoint: str | None = None) -> int:
        """The most requests that arrived within any span of ``seconds`` (a sliding window)."""
        times = [e.time for e in self.snapshot() if endpoint is None or e.endpoint == endpoint]
        best = 0
        for i, start in enumerate(times):
            best = max(best, bisect.bisect_left(times, start + seconds, lo=i) - i)
        return best

    def per_second(self) -> dict[int, int]:
        """Requests per 1-second bucket of monotonic time since the first request."""
        entries = self.snapshot()
        if not entries:
            return {}
        first = entries[0].time
        return dict(sorted(Counter(int(e.time - first) for e in entries).items()))


class ImageCache:
    """Rendered JPEG bytes by (kind, scene, size), least recently used dropped beyond max_bytes."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return data

    def put(self, key: tuple, data: bytes) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)


def _with_comment(jpeg: bytes, text: str) -> bytes:
    """Insert a COM segment after SOI so every object's file is distinct even when scenes repeat."""
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _inflate(jpeg: bytes, extra: int) -> bytes:
    """Pad a JPEG with ``extra`` bytes of APP15 segments: still a valid JPEG, just bigger."""
    segments = []
    while extra > 0:
        chunk = min(extra, 65533)
        segments.append(b"\xff\xef" + struct.pack(">H", chunk + 2) + b"\0" * chunk)
        extra -= chunk
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def _claim_size(jpeg: bytes, side: int) -> bytes:
    """Rewrite the frame header (SOF0/SOF2) to claim side x side pixels: a decompression bomb."""
    data = bytearray(jpeg)
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            break
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5:i + 9] = struct.pack(">HH", side, side)
            return bytes(data)
        i += 2 + length
    raise ValueError("no JPEG frame header found")


def _corrupt(jpeg: bytes) -> bytes:
    """Keep the SOI marker, destroy the headers: no decoder can read it."""
    return jpeg[:2] + bytes((b ^ 0x5A) for b in jpeg[2:600]) + jpeg[600:]


class FakeMet:
    """One fake Met: a generated collection, its fault knobs and its request accounting."""

    def __init__(self, collection: CollectionConfig | None = None, faults: Faults | None = None, *,
                 image_cache_bytes: int = 256 * 1024 * 1024, render_threads: int = 2):
        self.collection = Collection(collection or CollectionConfig())
        self.fault_state = FaultState(faults)
        self.log = RequestLog()
        self.cache = ImageCache(image_cache_bytes)
        self.injected: Counter[str] = Counter()
        self._executor = ThreadPoolExecutor(max_workers=render_threads, thread_name_prefix="fake-met-render")
        self._rendering: dict[tuple, asyncio.Future] = {}

    @property
    def faults(self) -> Faults:
        return self.fault_state.faults

    def set_faults(self, **changes) -> Faults:
        """Change fault knobs while serving (takes effect with the next request)."""
        return self.fault_state.set(**changes)

    def reset(self) -> None:
        """Forget requests, per-path attempt counts and any block in force (the collection stays)."""
        self.log.clear()
        self.fault_state.reset()
        self.injected.clear()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # Accounting

    def max_requests_in_any_window(self, seconds: float = 1.0, endpoint: str | None = None) -> int:
        return self.log.max_in_window(seconds, endpoint)

    def stats(self, window: float = 1.0) -> dict:
        entries = self.log.snapshot()
        return {
            "requests": len(entries),
            "by_endpoint": dict(Counter(e.endpoint for e in entries)),
            "by_status": {str(k): v for k, v in Counter(e.status for e in entries).items()},
            "faults_injected": dict(self.injected),
            "window_seconds": window,
            "max_requests_in_window": self.log.max_in_window(window),
            "per_second": {str(k): v for k, v in self.log.per_second().items()},
            "blocks": self.fault_state.blocks,
            "block_remaining_s": round(self.fault_state.block_remaining(), 3),
            "image_cache": {"hits": self.cache.hits, "misses": self.cache.misses},
            "collection": self.collection.summary(),
        }

    def truth(self) -> dict:
        """What every listed object really is, so a test can compute the expected ingest result."""
        out = {}
        for object_id, obj in self.collection.objects.items():
            out[str(object_id)] = {
                "status": obj.status, "kind": obj.kind, "is_vase": obj.is_vase,
                "special": self.collection.special.get(object_id),
                "department_id": obj.department_id, "metadata_date": obj.metadata_date,
                "images": [{"url": self.collection.image_url(r), "seq": r.seq, "missing": r.missing,
                            "width": r.width, "height": r.height,
                            "oversized": self.fault_state.permanent(self._image_path(r), object_id)}
                           for r in obj.images],
            }
        return out

    def _image_path(self, ref: ImageRef, rendition: str = "original") -> str:
        return f"{IMAGE_PREFIX}/{ref.dept_code}/{rendition}/{ref.file_name}"

    # The application

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        api = API_PREFIX
        app.router.add_get(f"{api}/objects", self._objects)
        app.router.add_get(f"{api}/objects/", self._no_id)
        app.router.add_get(f"{api}/objects/{{object_id}}", self._object)
        app.router.add_get(f"{api}/departments", self._departments)
        app.router.add_get(f"{api}/search", self._search)
        app.router.add_get(f"{IMAGE_PREFIX}/{{dept}}/{{rendition}}/{{name}}", self._image)
        app.router.add_get(f"{ADMIN_PREFIX}/stats", self._admin_stats)
        app.router.add_get(f"{ADMIN_PREFIX}/log", self._admin_log)
        app.router.add_get(f"{ADMIN_PREFIX}/objects", self._admin_objects)
        app.router.add_post(f"{ADMIN_PREFIX}/faults", self._admin_faults)
        app.router.add_get(f"{ADMIN_PREFIX}/faults", self._admin_faults)
        app.router.add_post(f"{ADMIN_PREFIX}/reset", self._admin_reset)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_cleanup(self, _app: web.Application) -> None:
        self.close()

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        path = request.path
        if path.startswith(ADMIN_PREFIX):
            return await handler(request)
        is_image = path.startswith(IMAGE_PREFIX + "/")
        entry = LoggedRequest(time.monotonic(), request.method, path, request.query_string, _endpoint(path))
        self.log.add(entry)
        faults = self.faults
        if (not is_image or faults.block_images) and self.fault_state.blocked(entry.time):
            entry.fault = "block"
            self.injected["block"] += 1
            return self._finish(entry, self._block_page(faults))
        key = path if not request.query_string else f"{path}?{request.query_string}"
        attempt = self.fault_state.next_attempt(key)
        fault = self.fault_state.transient(key, attempt, is_image)
        entry.fault = fault
        if fault:
            self.injected[fault] += 1
        delay = self.fault_state.delay(key, attempt) + (faults.slow_seconds if fault == "slow" else 0.0)
        if delay:
            await asyncio.sleep(delay)
        if fault == "reset":
            entry.status = -1
            _reset(request)
        if fault == "error_5xx":
            status = (500, 502, 503, 504)[attempt % 4]
            return self._finish(entry, web.Response(status=status, text=f"<html><body><h1>{status}</h1>"
                                                    "Service Unavailable</body></html>", content_type="text/html"))
        if fault == "rate_429":
            return self._finish(entry, web.json_response({"message": "Too Many Requests"}, status=429,
                                                         headers={"Retry-After": str(faults.retry_after)}))
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        if fault == "wrong_content_type":
            response.content_type = "text/html" if is_image else "text/plain"
        elif fault == "corrupt_image" and response.status == 200:
            response.body = _corrupt(response.body)
        elif fault == "truncate_image" and response.status == 200:
            response.body = response.body[: max(100, len(response.body) * 3 // 5)]
        elif fault == "truncate":
            entry.status = response.status
            await _send_truncated(request, response)
        return self._finish(entry, response)

    @staticmethod
    def _finish(entry: LoggedRequest, response: web.StreamResponse) -> web.StreamResponse:
        entry.status = response.status
        return response

    @staticmethod
    def _block_page(faults: Faults) -> web.Response:
        ms = int(time.time() * 1000)
        incident = f"{ms % 10 ** 9}-{(ms * 7919) % 10 ** 12}"
        return web.Response(status=faults.block_status, text=BLOCK_PAGE.format(ms=ms, incident=incident),
                            content_type="text/html",
                            headers={"Cache-Control": "no-cache, no-store", "X-Iinfo": f"2-{ms % 10 ** 8}-0 0NNN",
                                     "X-CDN": "Imperva", "Connection": "close"})

    # API handlers

    async def _objects(self, request: web.Request) -> web.Response:
        since = None
        raw_date = request.query.get("metadataDate", "").strip()
        if raw_date:
            try:
                since = date.fromisoformat(raw_date[:10])
            except ValueError:
                return _json({"message": f"Invalid metadataDate: {raw_date}"}, status=400)
        departments = None
        raw_departments = request.query.get("departmentIds", "").strip()
        if raw_departments:
            try:
                departments = [int(d) for d in raw_departments.split("|") if d.strip()]
            except ValueError:
                return _json({"message": f"Invalid departmentIds: {raw_departments}"}, status=400)
        if since is None and departments is None:
            return web.Response(body=self.collection.listing_body(), content_type=JSON_TYPE)
        ids = self.collection.list_ids(since, departments)
        return _json({"total": len(ids), "objectIDs": ids or None})

    async def _no_id(self, request: web.Request) -> web.Response:
        return _json({"message": "Not Found"}, status=404)

    async def _object(self, request: web.Request) -> web.Response:
        try:
            object_id = int(request.match_info["object_id"])
        except ValueError:
            return _json({"message": "ObjectID not found"}, status=404)
        obj = self.collection.get(object_id)
        if obj is None or obj.status == "vanished":
            return _json({"message": "ObjectID not found"}, status=404)
        if obj.status == "loan":
            return _json({"message": "Not a valid object"}, status=404)
        return web.Response(body=self.collection.body(obj), content_type=JSON_TYPE)

    async def _departments(self, request: web.Request) -> web.Response:
        return _json({"departments": [{"departmentId": k, "displayName": v} for k, v in DEPARTMENTS.items()]})

    async def _search(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "")
        if not q.strip():
            return _json({"total": 0, "objectIDs": None})
        has_images = request.query.get("hasImages", "").lower() == "true"
        department = request.query.get("departmentId")
        try:
            department_id = int(department) if department else None
        except ValueError:
            return _json({"total": 0, "objectIDs": None})
        ids = self.collection.search(q, has_images, department_id)
        return _json({"total": len(ids), "objectIDs": ids or None})

    # Image host

    async def _image(self, request: web.Request) -> web.Response:
        dept, rendition, name = (request.match_info[k] for k in ("dept", "rendition", "name"))
        ref = self.collection.images.get((dept, name))
        if ref is None or ref.missing or rendition not in RENDITIONS:
            return web.Response(status=404, text="<html><body>404 Not Found</body></html>", content_type="text/html")
        if "moved" not in request.query:
            target = self.collection.redirect_target(ref, request.rel_url.raw_path)
            if target is not None:
                return web.Response(status=302, headers={"Location": target})
        scale = RENDITIONS[rendition] or self.collection.config.small_scale
        width, height = max(8, round(ref.width * scale)), max(8, round(ref.height * scale))
        jpeg = await self._render(ref, width, height)
        jpeg = _with_comment(jpeg, f"metgan fake Met object {ref.object_id} image {ref.seq} {rendition}")
        oversized = self.fault_state.permanent(request.path, ref.object_id)
        if oversized == "huge":
            jpeg = _claim_size(jpeg, self.faults.huge_side)
        elif oversized == "inflate":
            jpeg = _inflate(jpeg, self.faults.inflate_bytes)
        return web.Response(body=jpeg, content_type="image/jpeg")

    async def _render(self, ref: ImageRef, width: int, height: int) -> bytes:
        key = (ref.kind, ref.scene, width, height)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        pending = self._rendering.get(key)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(self._executor, drawing.render_jpeg, ref.kind,
                                           self.collection.config.seed, ref.scene, width, height)
            self._rendering[key] = pending
            try:
                data = await pending
                self.cache.put(key, data)
            finally:
                self._rendering.pop(key, None)
            return data
        return await asyncio.shield(pending)

    # Admin

    async def _admin_stats(self, request: web.Request) -> web.Response:
        window = float(request.query.get("window", "1.0"))
        return _json(self.stats(window))

    async def _admin_log(self, request: web.Request) -> web.Response:
        return _json([e.as_json() for e in self.log.snapshot()])

    async def _admin_objects(self, request: web.Request) -> web.Response:
        return _json(self.truth())

    async def _admin_faults(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                changes = await request.json()
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object of fault knobs")
                self.set_faults(**changes)
            except (ValueError, TypeError) as exc:
                return _json({"message": str(exc)}, status=400)
        return _json(self.faults.as_json())

    async def _admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return _json({"reset": True})


def _json(payload, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(payload, ensure_ascii=False).encode(), status=status, content_type=JSON_TYPE)


def _endpoint(path: str) -> str:
    if path.startswith(IMAGE_PREFIX + "/"):
        return "image"
    if not path.startswith(API_PREFIX + "/"):
        return "other"
    rest = path[len(API_PREFIX) + 1:]
    if rest.startswith("objects/"):
        return "object"
    return rest if rest in ("objects", "departments", "search") else "other"


def _reset(request: web.Request):
    """Close the connection with a TCP RST before any byte of the answer (a 'connection reset')."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    raise asyncio.CancelledError()


async def _send_truncated(request: web.Request, response: web.Response):
    """Send headers declaring the full length but only part of the body, then close."""
    body = response.body or b""
    stream = web.StreamResponse(status=response.status, headers={"Content-Type": response.headers.get(
        "Content-Type", JSON_TYPE)})
    stream.content_length = len(body) + 64
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    raise asyncio.CancelledError()
