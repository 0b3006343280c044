"""The `dynamo` command line: a thin layer over dynamo_core."""
