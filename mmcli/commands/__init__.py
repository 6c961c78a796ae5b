"""The `mm` commands, one module per group; `mmcli.cli` puts them on the app. Each command parses its
arguments and calls one library function; nothing heavy is imported at module level."""
