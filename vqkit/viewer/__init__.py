"""The interactive viewer of trained discrete models (``vqkit view``).

``vqkit.viewer.state`` holds the computations (codes, edits, the code atlas, prior samples and
completions) and ``vqkit.viewer.pictures`` draws them, without any UI; ``vqkit.viewer.app``
builds the Gradio app on top of them and needs the ``viewer`` extra
(``pip install "vqkit[viewer]"``).
"""

from vqkit.viewer.pictures import code_grid_svg, save_png
from vqkit.viewer.state import Analysis, ViewerState, edit_codes, load_viewer_state

__all__ = [
    "Analysis",
    "ViewerState",
    "code_grid_svg",
    "edit_codes",
    "load_viewer_state",
    "save_png",
]
