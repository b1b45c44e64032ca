"""Rendered scenes for the scenario suite: a small 3D world of textured
planes and photo cut-outs seen through the configured camera from a running
runner, with the ultrasonic log from the same geometry (docs/scenes.md)."""
