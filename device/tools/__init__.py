"""Tools for the contributor, not the device: bench, scenario suite, evaluation, ranging evaluation."""
