"""dualviz: the navigation between the pages (each page is a script under pages/).

The table of pages is dualviz.views: titles, addresses and what each page offers live there.
Rooms wrap every page here, in one place: before it runs a follower moves to its presenter's
view, after it ran (its controls wrote the URL) a presenter publishes the view.
"""

import streamlit as st

from dualviz.ui import rooms, state
from dualviz.views import VIEWS

page = st.navigation([st.Page(view.script, title=view.title, icon=view.icon,
                              url_path=view.url_path or None, default=not view.url_path)
                      for view in VIEWS])
state.start_of_run(page.url_path)
room = rooms.before_page(page)
if not room.followed:  # a follower of a presenter's live panel sees that panel only
    page.run()
rooms.after_page(room, page)
