"""Figures on a page with their PNG and SVG downloads (rendered only when clicked)."""

from __future__ import annotations

import streamlit as st

from ..service.images import IMAGE_FORMATS, image_bytes


def chart(figure: dict, key: str, where=st) -> None:
    where.plotly_chart(figure, key=key, config={"displaylogo": False})
    downloads(figure, key, where=where)


def downloads(figure: dict, key: str, name: str = "", where=st) -> None:
    """PNG and SVG of a figure, drawn on the server when clicked (service.images: a fraction
    of a second, a few seconds for the first). name: which figure, where several share a row."""
    row = where.container(horizontal=True)
    for fmt in IMAGE_FORMATS:
        row.download_button(
            f"{fmt.upper()}: {name}" if name else fmt.upper(),
            data=lambda fmt=fmt: image_bytes(figure, fmt),
            file_name=f"dualviz-{key}.{fmt}", mime=IMAGE_FORMATS[fmt], key=f"{key}_{fmt}",
            on_click="ignore", icon=":material/download:",
            help=f"Download this figure as {fmt.upper()}, drawn when clicked. If many are being "
                 "drawn at once this one is refused: click again, or use the chart's camera "
                 "button, which draws a PNG in your browser.")
