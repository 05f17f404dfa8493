"""Streamlit helpers shared by the pages. Only this subpackage and the pages import Streamlit;
everything it shows comes from the backend modules of dualviz."""
