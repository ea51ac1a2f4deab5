"""The command line: thin click commands that parse, call one core function, and print."""
