"""dualviz: the navigation between the pages (each page is a script under pages/).

The table of pages is dualviz.views: titles, addresses and what each page offers live there.
"""

import streamlit as st

from dualviz.views import VIEWS

st.navigation([st.Page(view.script, title=view.title, icon=view.icon,
                       url_path=view.url_path or None, default=not view.url_path)
               for view in VIEWS]).run()
