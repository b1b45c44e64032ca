"""Decision: from tracks and ranges to one threat: range filter, fusion, alert policy."""
