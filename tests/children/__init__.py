"""Modules the tests run in child processes, each a file of its own: target modules that stand in a user's folder,
planted test files, planted ports, a script. The suite never imports them (a test copies the one it needs into its
temporary folder, or runs it by path), and pytest does not collect them here: no name starts with test_, a planted
test file gets its test_ name where it is copied. Each module's docstring names the test that uses it and why."""
