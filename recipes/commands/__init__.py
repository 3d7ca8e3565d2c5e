"""The command line: one module per command (`run`, `eval`, `export`, ...) and the Fire entry point `cli.main`."""
