"""App: the composition root and the lifecycles built on it (live device, replay, self-test, systemd notify)."""
