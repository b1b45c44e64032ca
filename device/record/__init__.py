"""Record: the recording format (reader, writer, importers) and the segmented live recorder."""
