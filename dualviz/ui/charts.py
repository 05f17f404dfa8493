"""A figure on a page with its PNG and SVG downloads (rendered only when clicked)."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from ..plots import IMAGE_FORMATS, image_bytes


def chart(figure: go.Figure, key: str, where=st) -> None:
    where.plotly_chart(figure, key=key, config={"displaylogo": False})
    row = where.container(horizontal=True)
    for fmt in IMAGE_FORMATS:
        row.download_button(
            fmt.upper(), data=lambda fmt=fmt: image_bytes(figure, fmt),
            file_name=f"dualviz-{key}.{fmt}", mime=IMAGE_FORMATS[fmt], key=f"{key}_{fmt}",
            on_click="ignore", icon=":material/download:",
            help=f"Download this figure as {fmt.upper()} (rendered when clicked).")
