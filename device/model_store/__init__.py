"""Model management in one place: the manifest, verify, install, fetch (store) and derived builds (derive)."""
