"""The interactive viewer of trained discrete models (``vqkit view``).

``vqkit.viewer.state`` holds the computations (codes, edits, the code atlas, prior samples and
completions) and imports no UI; ``vqkit.viewer.app`` builds the Gradio app on top of it and needs
the ``viewer`` extra (``pip install "vqkit[viewer]"``).
"""

from vqkit.viewer.state import (
    Analysis,
    ViewerState,
    code_grid_svg,
    edit_codes,
    load_viewer_state,
    save_png,
)

__all__ = [
    "Analysis",
    "ViewerState",
    "code_grid_svg",
    "edit_codes",
    "load_viewer_state",
    "save_png",
]
