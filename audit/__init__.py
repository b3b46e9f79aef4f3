"""The SQLite audit log (sqlite-utils) and the reviewer CLI."""
