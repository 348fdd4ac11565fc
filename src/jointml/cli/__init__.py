"""cli: the `jointml` command (demo, run, predict, bench, certs); see `jointml --help`."""
