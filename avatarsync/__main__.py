from avatarsync.cli import run

run()
