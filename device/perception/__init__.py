"""Perception: from a frame to camera tracks: detector, camera geometry, tracking."""
