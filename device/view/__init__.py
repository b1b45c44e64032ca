"""View: what a person sees: the annotated frame and the preview page."""
