"""Making and fetching datasets on disk: the procedural facades, the paper's downloads, layout tools."""
