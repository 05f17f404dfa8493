"""PNG and SVG of a figure, rendered by one headless Chromium per server process.

A page's export buttons call :func:`image_bytes` when clicked. Rendering one at a time in one
warm browser (kaleido's) is what a lecture hall can afford: kaleido's own ``to_image`` starts a
Chromium for every figure (about 2 s and 150 MB each, so a hall that clicks "PNG" at once
would start a hundred of them), and its page loads MathJax from a CDN, which the server has no
business reaching (offline, the render waits on it). Here:

* the page holds plotly.js from the installed plotly package and nothing else (no MathJax: no
  figure of ours has LaTeX), so a render reaches no host;
* one render at a time; at most ``MAX_WAITING`` more wait for it, any beyond that are refused at
  once with :class:`ImagesBusy` (Streamlit then tells the visitor the file could not be made;
  the button's help says to click again or use the chart's camera button, which draws the
  figure in the visitor's browser);
* a figure the browser cannot draw raises :class:`ImageFailed`; a render that takes longer
  than ``RENDER_SECONDS`` or breaks the browser raises it too, and the browser is started
  afresh for the next one;
* the browser starts at the first export and closes after ``IDLE_SECONDS`` without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

IMAGE_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
PNG_SCALE = 2  # twice the screen's resolution: sharp on a slide
MAX_WAITING = 3  # Streamlit runs downloads on asyncio's default executor (6 threads on 2
                 # cores, shared): waiting renders must leave most of it free
RENDER_SECONDS = 30.0
START_SECONDS = 60.0  # a cold Chromium on a loaded machine takes a few seconds; allow many
IDLE_SECONDS = 300.0


class ImagesBusy(RuntimeError):
    """Too many exports are waiting; this one was not started."""


class ImageFailed(RuntimeError):
    """The figure was not rendered: the browser could not draw it, or it timed out or broke
    (then it is restarted for the next render)."""


def offline_page() -> Any:
    """kaleido's page with the installed plotly.js and without MathJax (its default is a CDN)."""
    from kaleido import PageGenerator

    return PageGenerator(mathjax=False)


class Renderer:
    """One kaleido browser on its own event-loop thread, one render at a time."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self._idle_seconds = idle_seconds
        self._turn = threading.Lock()  # held by the one render (or start, or close) under way
        self._places = threading.BoundedSemaphore(MAX_WAITING + 1)  # the render and its queue
        self._loop: asyncio.AbstractEventLoop | None = None
        self._browser: Any = None
        self._idle_timer: threading.Timer | None = None
        self.started = 0  # browsers started so far (the benchmark and tests read it)

    def render(self, figure: dict, fmt: str) -> bytes:
        if fmt not in IMAGE_FORMATS:
            raise ValueError(f"format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
        if not self._places.acquire(blocking=False):
            raise ImagesBusy(f"{MAX_WAITING + 1} figures are being exported; try again in a "
                             "few seconds, or use the camera button on the chart")
        try:
            with self._turn:
                self._cancel_idle_timer()
                try:
                    return self._render(figure, fmt)
                finally:
                    self._arm_idle_timer()
        finally:
            self._places.release()

    def close(self) -> None:
        with self._turn:
            self._cancel_idle_timer()
            self._close()

    @property
    def running(self) -> bool:
        return self._browser is not None

    def _render(self, figure: dict, fmt: str) -> bytes:
        from kaleido.errors import JavascriptError, KaleidoError

        if self._browser is None:
            self._start()
        layout = figure.get("layout", {})
        opts = {"format": fmt, "width": layout.get("width") or 700,
                "height": layout.get("height") or 500,
                "scale": PNG_SCALE if fmt == "png" else 1}
        try:
            return self._call(self._browser.calc_fig(figure, opts=opts), RENDER_SECONDS + 5)
        except (JavascriptError, KaleidoError) as error:  # the figure's fault: the browser is fine
            raise ImageFailed(f"the {fmt.upper()} could not be drawn: {error}") from error
        except Exception as error:
            self._close()  # a timeout or a broken browser: the next render gets a fresh one
            raise ImageFailed(f"the {fmt.upper()} could not be drawn ({type(error).__name__}); "
                              "try again") from error

    def _start(self) -> None:
        from kaleido import Kaleido

        loop = self._loop = asyncio.new_event_loop()

        def serve() -> None:
            loop.run_forever()  # until _close stops it
            loop.close()

        threading.Thread(target=serve, name="dualviz-images", daemon=True).start()

        async def open_browser() -> Any:
            browser = Kaleido(n=1, timeout=RENDER_SECONDS, page_generator=offline_page())
            await browser.open()
            return browser

        try:
            self._browser = self._call(open_browser(), START_SECONDS)
        except Exception as error:
            self._close()
            raise ImageFailed(f"the export browser did not start ({type(error).__name__})") \
                from error
        self.started += 1

    def _call(self, coroutine: Any, seconds: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout=seconds)
        except FutureTimeout:
            future.cancel()
            raise

    def _close(self) -> None:
        browser, loop = self._browser, self._loop
        self._browser = self._loop = None
        if loop is None:
            return
        if browser is not None:
            with contextlib.suppress(Exception):  # a broken browser may not close cleanly
                asyncio.run_coroutine_threadsafe(browser.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)

    def _arm_idle_timer(self) -> None:
        self._idle_timer = threading.Timer(self._idle_seconds, self._close_if_idle)
        self._idle_timer.daemon = True
        self._idle_timer.start()

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _close_if_idle(self) -> None:
        if self._turn.acquire(blocking=False):  # a render under way keeps the browser
            try:
                self._close()
            finally:
                self._turn.release()


_RENDERER = Renderer()


def image_bytes(figure: dict, fmt: str) -> bytes:
    """The figure as PNG (``PNG_SCALE`` times its size) or SVG, drawn by this process's
    export browser: a fraction of a second when it is warm, a few seconds to start it."""
    return _RENDERER.render(figure, fmt)
