"""Packaging glue: this directory ships as the data package `device.models_data`
(see pyproject.toml), so the manifest is found with importlib.resources from
both an editable and a regular install."""
