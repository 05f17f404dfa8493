"""Theory: the paper's taxonomy as a table of live computations, and its main formulas."""

import streamlit as st

from dualviz.taxonomy import FORMULAS, cells

st.set_page_config(page_title="Theory · dualviz", layout="wide")
st.title("Theory: when is the duality gap zero?")
st.caption(
    "Every row is computed now by the app's own solvers on a small instance (closed forms, "
    "CVXPY, the certified working-set solver), not copied from the paper.")


@st.cache_data(show_spinner="Computing the eight cells...")
def table() -> list[dict[str, str]]:
    return [cell.row() for cell in cells()]


st.dataframe(table(), hide_index=True)
st.markdown(
    "Two-layer ReLU nets are one layer of neurons, so the standard and the parallel net "
    "coincide; both rows are computed anyway. Deep ReLU nets on general data have no closed "
    "form: the paper proves zero gap for parallel nets with enough branches (see the ReLU page "
    "for trained comparisons).")

st.subheader("The formulas")
for latex, sentence in FORMULAS:
    st.latex(latex)
    st.markdown(sentence)
